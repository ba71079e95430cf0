"""Pruning-at-initialisation benchmark: random, magnitude, SNIP, GraSP, SynFlow and PX.

What is measured
----------------
For each task (``--tasks``, default mnist5k and shapes at 16x16, from ``models_zoo.data``), each model
(``models_zoo.small:small_cnn``, a plain 4-conv CNN, and ``models_zoo.small:resnet8``, the CIFAR ResNet
family at one block per stage; ``--init paper``, the default, initialises them as the papers do), each
seed (model initialisation, training order and pruning batch) and each criterion:

* **irregular**: score at initialisation through the compiler's passes (``trace`` ->
  ``analyze-channels`` -> ``score-<criterion>`` -> ``apply-masks``, global threshold) at weight
  densities 20/10/5/2/1 %, then train the masked GraphModule (masks live in its forward);
* **structured**: the same per-weight scores summed over each pruning group's channels
  (``allocate`` removes the same fraction of every group, ``remove-channels`` makes the network
  physically smaller) at 50 % and 75 % channel sparsity, then train the smaller network;
* **dense**: the unpruned model with the same training, for reference.

Every run gets the same training budget (Adam, one-cycle learning rate, ``--steps`` batches of 64 per
task) and reports validation and test accuracy. Data-driven criteria (SNIP, GraSP, PX) all see the
same class-balanced pruning batch (``--per-class`` examples of each class). SynFlow and PX prune
iteratively over ``--rounds`` rounds (default 100, as the paper; ``--quick`` uses 5); for the
structured variant they score once, on the dense model. Layer collapse is counted two ways: layers
that keep no weight (``collapsed_layers``; in a ResNet a whole branch may go while the skip path still
connects), and a network with no input->output path left ("disconnected",
``graphprune.scoring.path_count == 0``).

Results are data: ``--results FILE`` merges one JSON object per run into FILE (the protocol's file is
``docs/results/pai.jsonl``; each record has task, model, method, density, seed, test_acc,
collapsed_layers, and the protocol it ran under), and ``benchmarks/results_tables.py pai`` makes the
docs tables from it. Smoke runs (``--quick``) are marked ``quick`` and belong in /tmp, not in docs/.

    python benchmarks/pai.py --results docs/results/pai.jsonl    # the full grid (hours on 2 CPU cores)
    python benchmarks/pai.py --quick --results /tmp/pai_quick.jsonl   # 1 seed, 2 densities, short: a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import PAI_FIELDS, check, merge, pai_key  # noqa: E402
from results_tables import pai_tables  # noqa: E402

from graphprune.copy_on_write import unshare  # noqa: E402
from graphprune.passes import Pass, run_pipeline  # noqa: E402
from graphprune.scoring import path_count  # noqa: E402
from graphprune.state import CompileState, Options  # noqa: E402
from models_zoo.data import TASKS, Task, class_balanced  # noqa: E402
from models_zoo.small import resnet8, small_cnn  # noqa: E402
from passes import (  # noqa: E402
    Allocate,
    AnalyzeChannels,
    ApplyMasks,
    Canonicalize,
    RemoveChannels,
    ScoreGrasp,
    ScorePx,
    ScoreRandom,
    ScoreSnip,
    ScoreSynflow,
    ScoreWeightMagnitude,
    Trace,
)

METHODS = ("random", "magnitude", "snip", "grasp", "synflow", "px")
DENSITIES = (0.2, 0.1, 0.05, 0.02, 0.01)
CHANNEL_SPARSITIES = (0.5, 0.75)
MODELS = {"small_cnn": small_cnn, "resnet8": resnet8}
SIZE = 16


@dataclasses.dataclass(frozen=True)
class Config:
    steps: dict[str, int]
    rounds: int
    per_class: int = 10
    lr: float = 0.01
    batch: int = 64
    init: str = "paper"  # the models' initialisation: "paper" (models_zoo paper_init) or "zoo"
    masked_data_copy: bool = True  # PX's data copy keeps pruned weights at 0 (the reference's behaviour)
    quick: bool = False

    def protocol(self) -> dict:
        """What a result depends on besides its cell: records of different protocols never mix."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Run:
    task: str
    model: str
    method: str
    kind: str  # dense | irregular | structured
    level: float  # weight density (irregular) or channel sparsity (structured)
    seed: int


_TASKS: dict[str, Task] = {}


def task(name: str) -> Task:
    """Built once per worker process (shapes rendering takes a few seconds)."""
    if name not in _TASKS:
        _TASKS[name] = TASKS[name](size=SIZE)
    return _TASKS[name]


def score_pass(method: str, rounds: int, density: float, cfg: Config) -> Pass:
    return {"random": lambda: ScoreRandom(seed=0), "magnitude": lambda: ScoreWeightMagnitude(p=1),
            "snip": lambda: ScoreSnip(), "grasp": lambda: ScoreGrasp(),
            "synflow": lambda: ScoreSynflow(rounds=rounds, density=density),
            "px": lambda: ScorePx(rounds=rounds, density=density, masked_data_copy=cfg.masked_data_copy)}[method]()


def prune(run: Run, cfg: Config) -> tuple[torch.nn.Module, dict]:
    """The pruned (or masked) GraphModule and what the passes recorded."""
    model, inputs = MODELS[run.model](SIZE, seed=run.seed, init=cfg.init)
    if run.kind == "dense":
        return model, {"score_s": 0.0, "density": 1.0, "collapsed_layers": 0, "disconnected": False}
    t = task(run.task)
    x, y = class_balanced(t.train.x, t.train.y, cfg.per_class, seed=run.seed)
    sparsity = 1 - run.level if run.kind == "irregular" else run.level
    state = CompileState(run.model, model, inputs, Options(sparsity=sparsity, score=run.method))
    state = run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])
    state = state.with_(data=[(x, y)])
    if run.kind == "irregular":
        scorer = score_pass(run.method, cfg.rounds, run.level, cfg)
        state = run_pipeline(state, [scorer, ApplyMasks(criterion=run.method, density=run.level)])
        layers = state.artifacts["apply-masks"]["layers"]
        info = {"density": state.artifacts["apply-masks"]["density"],
                "collapsed_layers": sum(v == 0 for v in layers.values()),
                "disconnected": path_count(model, state.masks, tuple(inputs[0].shape)) == 0}
    else:
        scorer = score_pass(run.method, 1, 1.0, cfg)
        state = run_pipeline(state, [scorer, Allocate(), RemoveChannels()])
        # channel removal keeps every group non-empty: no layer is emptied
        info = {"density": None, "collapsed_layers": 0, "macs": state.macs["pruned"] / state.macs["dense"]}
    info["score_s"] = state.artifacts[scorer.name]["seconds"]
    gm = state.gm
    unshare(gm, model)
    return gm, info


def accuracy(model: torch.nn.Module, batches) -> float:
    """Accuracy in %."""
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    return 100.0 * correct / len(batches.y)


def train_eval(model: torch.nn.Module, t: Task, steps: int, cfg: Config, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    loader = dataclasses.replace(t.train, seed=seed, batch_size=cfg.batch)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    model.train()
    step, epoch = 0, 0
    while step < steps:
        for x, y in loader.epoch(epoch):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            schedule.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    return {"val_acc": accuracy(model, t.val), "test_acc": accuracy(model, t.test)}


def execute(run: Run, cfg: Config) -> dict:
    """One run's record: its cell, what the passes recorded, accuracies in %, the protocol."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, info = prune(run, cfg)
    accuracies = train_eval(model, task(run.task), cfg.steps[run.task], cfg, run.seed)
    record = {**dataclasses.asdict(run), **info, **accuracies, "seconds": round(time.perf_counter() - start, 2),
              "protocol": cfg.protocol()}
    return check(record, PAI_FIELDS)


def plan(seeds: int, densities: tuple[float, ...], sparsities: tuple[float, ...], tasks: list[str],
         models: list[str]) -> list[Run]:
    runs = []
    for t in tasks:
        for m in models:
            for s in range(seeds):
                runs.append(Run(t, m, "dense", "dense", 1.0, s))
                runs += [Run(t, m, meth, "irregular", d, s) for meth in METHODS for d in densities]
                runs += [Run(t, m, meth, "structured", c, s) for meth in METHODS for c in sparsities]
    cost = {"resnet8": 2.0, "small_cnn": 1.0}  # longest first, for load balance
    return sorted(runs, key=lambda r: -cost[r.model] * (1.5 if r.task == "shapes" else 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, densities 10/1 %%, 50 %% channels, short")
    parser.add_argument("--tasks", nargs="+", default=["mnist5k", "shapes"], choices=sorted(TASKS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100, help="SynFlow/PX iterative rounds (paper: 100)")
    parser.add_argument("--steps", type=int, default=100, help="training steps per run (every task)")
    parser.add_argument("--init", default="paper", choices=("paper", "zoo"), help="the models' initialisation")
    parser.add_argument("--all-ones-data-copy", action="store_true",
                        help="PX's earlier data copy (every weight 1) instead of the reference's masked one")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--out", type=Path, help="write the markdown tables here")
    parser.add_argument("--results", type=Path, help="merge every run's record into this JSON-lines file")
    args = parser.parse_args(argv)
    densities, sparsities = (DENSITIES, CHANNEL_SPARSITIES) if not args.quick else ((0.1, 0.01), (0.5,))
    seeds = 1 if args.quick else args.seeds
    steps = {t: 30 if args.quick else args.steps for t in args.tasks}
    cfg = Config(steps=steps, rounds=5 if args.quick else args.rounds, init=args.init,
                 masked_data_copy=not args.all_ones_data_copy, quick=args.quick)
    runs = plan(seeds, densities, sparsities, args.tasks, args.models)
    print(f"{len(runs)} runs, {args.jobs} workers, protocol {cfg.protocol()}", file=sys.stderr)
    start = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("fork")) as pool:
        for i, result in enumerate(pool.map(execute, runs, [cfg] * len(runs), chunksize=1)):
            results.append(result)
            if args.results:
                merge(args.results, [result], pai_key)
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{len(runs)} runs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    text = pai_tables(results)
    footer = (f"\n{len(runs)} runs in {time.perf_counter() - start:.0f} s wall ({args.jobs} workers); "
              f"protocol {cfg.protocol()}, seeds={seeds}.")
    print(text + footer)
    if args.out:
        args.out.write_text(text + footer + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
