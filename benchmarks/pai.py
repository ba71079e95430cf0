"""Pruning-at-initialisation benchmark: SNIP, GraSP, SynFlow and PX (and PX's controls), the papers' protocol.

What is measured
----------------
For each task (``--tasks``, default mnist5k and shapes at 16x16, from ``models_zoo.data``), each model
(``plain_cnn``, four conv-ReLU layers without BatchNorm, and ``resnet8``, the CIFAR ResNet with
BatchNorm at one block per stage; ``small_cnn``, the plain CNN with BatchNorm, on request; all
initialised as the papers do with ``--init paper``, the default), each seed (model initialisation,
training order and pruning batch) and each criterion: score at initialisation through the compiler's
passes (``trace`` -> ``analyze-channels`` -> ``score-<criterion>`` -> ``apply-masks``, one global
threshold) at weight densities 1, 0.5, 0.2, 3 and 10 % (in that order, so a cut-short run has the
acceptance densities), then train the masked GraphModule (masks live in its forward). SynFlow and PX
prune iteratively over ``--rounds`` rounds (100, as the papers). Data-driven criteria (SNIP, GraSP, PX)
see the same class-balanced pruning batch (10 examples of each class).

Controls, trained from every PX mask: ``px-shuffled`` (PX's kept weights permuted within each layer,
which is a random mask at PX's per-layer densities) and ``px-filter-shuffled`` (permuted within each
filter: PX's fan-in per unit kept too). If a control trains as well as PX, PX's value lies in the
densities it chose, not in its connections.

Protocol: every run trains for the same budget (Adam, one-cycle schedule, ``--steps`` batches of 64:
1200 on both tasks, about 20 epochs of mnist5k, chosen from validation curves in docs/pai.md). The learning
rate is chosen on the validation split with the same trials for every method: one run per rate in
``--lrs`` at 1 % density (dense: unpruned) on a tuning seed (1000) that is none of the test seeds;
the rate with the best validation accuracy is then used for every density and seed of that (task,
model, method). Layer collapse is recorded per run: layers that keep no weight (``collapsed_layers``;
in a ResNet a whole branch may go while the skip path still connects), and log10 of the
input->output paths left (``log10_paths``; none left: ``disconnected``). ``--structured`` adds the
channel-removal runs (per-channel sums of the same scores, 50 and 75 % of every group's channels
physically removed).

Results are data: ``--results FILE`` merges one JSON object per run into FILE (the protocol's file is
``docs/results/pai.jsonl``; each record has task, model, method, density, seed, test_acc,
collapsed_layers, the learning rate, the phase (tune or test) and the protocol it ran under), and
``benchmarks/results_tables.py pai`` makes the docs tables from it, with paired comparisons (PX minus
each criterion on the same seed). ``--resume`` skips what FILE already holds, so an interrupted sweep
continues. Smoke runs (``--quick``) are marked ``quick`` and belong in /tmp, not in docs/.

    python benchmarks/pai.py --results docs/results/pai.jsonl --resume   # the whole protocol (hours on 2 cores)
    python benchmarks/pai.py --quick --results /tmp/pai_quick.jsonl      # 1 seed, 2 densities, short: a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pai_run import CONTROLS, MODELS, Config, Run, execute  # noqa: E402
from _results import PAI_FIELDS, check, load, merge, pai_key  # noqa: E402
from results_tables import pai_tables  # noqa: E402

from models_zoo.data import TASKS  # noqa: E402

CRITERIA = ("random", "magnitude", "snip", "grasp", "synflow", "px")
DEFAULT_METHODS = ("snip", "grasp", "synflow", "px")  # px brings its CONTROLS
DENSITIES = (0.01, 0.005, 0.002, 0.03, 0.1)  # the acceptance densities first: a cut-short run has them
CHANNEL_SPARSITIES = (0.5, 0.75)
TUNE_SEED = 1000  # validation trials use their own seed, never one of the test seeds
TUNE_DENSITY = 0.01


def key_of(run: Run, method: str, cfg: Config) -> tuple:
    """The key of the record ``run`` writes for ``method`` (a PX run writes its controls' too)."""
    return pai_key({**run.__dict__, "method": method, "protocol": cfg.protocol()})


def _text(key: tuple) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def methods_of(run: Run) -> list[str]:
    return [run.method, *CONTROLS] if run.method == "px" and run.kind == "irregular" else [run.method]


def tuning_plan(tasks, models, methods, cfg: Config) -> list[Run]:
    """Every method of every cell gets the same trials: one per learning rate, at TUNE_DENSITY."""
    runs = []
    for t in tasks:
        for m in models:
            runs += [Run(t, m, "dense", "dense", 1.0, TUNE_SEED, lr, "tune") for lr in cfg.lrs]
            runs += [Run(t, m, x, "irregular", TUNE_DENSITY, TUNE_SEED, lr, "tune") for x in methods for lr in cfg.lrs]
    return runs


def chosen_lr(records: list[dict], t: str, m: str, method: str, cfg: Config) -> float:
    """The learning rate with the best validation accuracy among the method's tuning trials (ties: the
    first in ``cfg.lrs``); the first candidate when the method was not tuned."""
    trials = {r["lr"]: r["val_acc"] for r in records if r.get("phase") == "tune" and r["protocol"] == cfg.protocol()
              and (r["task"], r["model"], r["method"]) == (t, m, method)}
    return max(cfg.lrs, key=lambda lr: (trials.get(lr, -1.0), -cfg.lrs.index(lr)))


def tuned_lrs(tuned: list[dict], tasks, models, methods, cfg: Config) -> dict[tuple, float]:
    """(task, model, method) -> its chosen learning rate, for dense, every method and PX's controls."""
    return {(t, m, x): chosen_lr(tuned, t, m, x, cfg) for t in tasks for m in models
            for x in ("dense", *methods, *CONTROLS)}


def test_plan(seeds, densities, sparsities, tasks, models, methods, lr: dict[tuple, float]) -> list[Run]:
    """The test runs, each method at its tuned learning rate ``lr`` (a PX run's controls share PX's
    run but are trained at their own tuned rate: see ``execute``)."""
    runs = []
    for d in densities:
        for s in seeds:
            for t in tasks:
                for m in models:
                    if d == densities[0]:
                        runs.append(Run(t, m, "dense", "dense", 1.0, s, lr[(t, m, "dense")]))
                    runs += [Run(t, m, x, "irregular", d, s, lr[(t, m, x)]) for x in methods]
    runs += [Run(t, m, x, "structured", c, s, lr[(t, m, x)])
             for c in sparsities for s in seeds for t in tasks for m in models for x in methods]
    return runs


def pending(runs: list[Run], cfg: Config, recorded: list[dict], methods=methods_of) -> list[Run]:  # noqa: ANN001
    """The runs not every record of which is in ``recorded`` (a PX run whose controls are missing runs
    again); ``methods(run)`` names the records a run writes."""
    done = {_text(pai_key(r)) for r in recorded}
    return [r for r in runs if not all(_text(key_of(r, x, cfg)) in done for x in methods(r))]


def run_all(runs: list[Run], cfg: Config, results: Path | None, jobs: int, resume: bool, lrs: dict | None,
            execute=execute, methods=methods_of) -> list[dict]:  # noqa: ANN001
    """Execute ``runs`` (``execute(run, cfg, lrs)`` -> records) on ``jobs`` worker processes, merging each
    record into ``results`` as it finishes; with ``resume``, runs whose records (``methods(run)``) are
    all in ``results`` already are skipped. ``benchmarks/pai_ablation.py`` passes its own two."""
    todo = pending(runs, cfg, load(results) if results and resume else [], methods)
    print(f"{len(todo)} runs to do ({len(runs) - len(todo)} already recorded), {jobs} workers", file=sys.stderr)
    start, out = time.perf_counter(), []
    with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
        for i, records in enumerate(pool.map(execute, todo, [cfg] * len(todo), [lrs] * len(todo), chunksize=1)):
            out += [check(r, PAI_FIELDS) for r in records]
            if results:
                merge(results, records, pai_key)
            if (i + 1) % 10 == 0 or i + 1 == len(todo):
                print(f"  {i + 1}/{len(todo)} runs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, densities 1/0.2 %%, 5 rounds, 30 steps")
    parser.add_argument("--tasks", nargs="+", default=["mnist5k", "shapes"], choices=sorted(TASKS))
    parser.add_argument("--models", nargs="+", default=["plain_cnn", "resnet8"], choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=CRITERIA)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parser.add_argument("--structured", action="store_true", help="also the channel-removal runs")
    parser.add_argument("--rounds", type=int, default=100, help="SynFlow/PX iterative rounds (paper: 100)")
    parser.add_argument("--steps", type=int, nargs=2, default=(1200, 1200), metavar=("MNIST5K", "SHAPES"),
                        help="training steps per run for mnist5k/digits and for shapes (where training plateaus)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03],
                        help="learning rates every method is tuned over on validation (one trial each)")
    parser.add_argument("--init", default="paper", choices=("paper", "zoo"), help="the models' initialisation")
    parser.add_argument("--all-ones-data-copy", action="store_true",
                        help="PX's earlier data copy (every weight 1) instead of the reference's masked one")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--resume", action="store_true", help="skip runs already in --results")
    parser.add_argument("--out", type=Path, help="write the markdown tables here")
    parser.add_argument("--results", type=Path, help="merge every run's record into this JSON-lines file")
    args = parser.parse_args(argv)
    quick = args.quick
    steps = {t: 30 if quick else args.steps[t == "shapes"] for t in args.tasks}
    cfg = Config(steps=steps, rounds=5 if quick else args.rounds, init=args.init, lrs=tuple(args.lrs),
                 masked_data_copy=not args.all_ones_data_copy, quick=quick)
    densities = (0.01, 0.002) if quick else tuple(args.densities)
    seeds = range(1 if quick else args.seeds)
    sparsities = CHANNEL_SPARSITIES if args.structured else ()
    print(f"protocol {cfg.protocol()}", file=sys.stderr)
    start = time.perf_counter()
    tuned = run_all(tuning_plan(args.tasks, args.models, args.methods, cfg), cfg, args.results, args.jobs,
                    args.resume, {})
    tuned = load(args.results) if args.results else tuned
    lrs = tuned_lrs(tuned, args.tasks, args.models, args.methods, cfg)
    runs = test_plan(seeds, densities, sparsities, args.tasks, args.models, args.methods, lrs)
    results = run_all(runs, cfg, args.results, args.jobs, args.resume, lrs)
    records = [r for r in (load(args.results) if args.results else tuned + results)
               if r.get("protocol") == cfg.protocol()]
    text = pai_tables(records)
    footer = (f"\n{len(records)} records; this invocation {time.perf_counter() - start:.0f} s wall "
              f"({args.jobs} workers).")
    print(text + footer)
    if args.out:
        args.out.write_text(text + footer + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
