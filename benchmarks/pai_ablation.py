"""Why SynFlow beats PX at extreme sparsity: the per-layer densities a criterion chooses, or the weights
it keeps within each layer?

A global-threshold criterion decides both at once. This ablation crosses them: for each (task, model,
seed), PX and SynFlow each prune to ``--density`` over 100 rounds (their own masks, as in
``benchmarks/pai.py``); then every *ranking* (px, synflow, random) is applied at every criterion's final
per-layer *densities* (``graphprune.scoring.iterate_within_layers``: the ranking's own iterative
schedule, run within each layer to that layer's count; random is the densities' mask shuffled within
each layer). Methods are named ``ranking@densities``; ``px`` and ``synflow`` are the global masks
themselves. If ``synflow@px`` trains like ``px`` and ``px@synflow`` like ``synflow``, the gap lies in
the densities; if the columns differ at fixed densities, it lies in the choice within layers.

Protocol: ``benchmarks/pai.py``'s (same Config, training and test split): every method gets the same
learning-rate trials on the validation split at the tuning seed, then is trained on every test seed at
its chosen rate. Records (one JSON object per method, seed and phase) go to ``--results``; ``--resume``
skips what is there; the table is printed and, with ``--out``, written.

    python benchmarks/pai_ablation.py --results docs/results/pai_ablation.jsonl --resume
    python benchmarks/pai_ablation.py --table       # rebuild docs/pai.md's table from the committed results
    python benchmarks/pai_ablation.py --quick --results /tmp/pai_ablation_quick.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pai_run import MODELS, SIZE, Config, Run, _mask_info, _with_masks, task, train_eval  # noqa: E402
from _results import load, write_between  # noqa: E402
from pai import TUNE_SEED, chosen_lr, run_all  # noqa: E402

from graphprune.copy_on_write import unshare  # noqa: E402
from graphprune.passes import run_pipeline  # noqa: E402
from graphprune.scoring import PathScorer, iterate, iterate_within_layers, layer_densities  # noqa: E402
from graphprune.scoring.controls import shuffled_masks  # noqa: E402
from graphprune.state import CompileState, Options  # noqa: E402
from models_zoo.data import class_balanced  # noqa: E402
from passes import AnalyzeChannels, Canonicalize, Trace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results" / "pai_ablation.jsonl"
DOC = REPO / "docs" / "pai.md"
MARKER = "pai-ablation"
CRITERIA = ("px", "synflow")
RANKINGS = ("px", "synflow", "random")
METHODS = ("px", "synflow", *(f"{r}@{d}" for d in CRITERIA for r in RANKINGS))


def ablation_masks(run: Run, cfg: Config) -> tuple[torch.nn.Module, CompileState, dict[str, dict]]:
    """The model, its analysed state and every method's masks for one (task, model, seed)."""
    model, inputs = MODELS[run.model](SIZE, seed=run.seed, init=cfg.init)
    t = task(run.task)
    x, _ = class_balanced(t.train.x, t.train.y, cfg.per_class, seed=run.seed)
    base = CompileState(run.model, model, inputs, Options(sparsity=1 - run.level, score="px"))
    base = run_pipeline(base, [Trace(), Canonicalize(), AnalyzeChannels()])
    px, synflow = PathScorer(base.gm, masked_data_copy=cfg.masked_data_copy), PathScorer(base.gm)
    shape = tuple(inputs[0].shape)
    score = {"px": lambda m: px.px(m, x), "synflow": lambda m: synflow.synflow(m, shape)}
    masks = {c: iterate(score[c], run.level, cfg.rounds)[1] for c in CRITERIA}
    for densities in CRITERIA:
        target = layer_densities(masks[densities])
        for ranking in CRITERIA:
            masks[f"{ranking}@{densities}"] = iterate_within_layers(score[ranking], target, cfg.rounds)[1]
        masks[f"random@{densities}"] = shuffled_masks(masks[densities], seed=run.seed, within="layer")
    return model, base, masks


def execute(run: Run, cfg: Config, lrs: dict | None) -> list[dict]:
    """Every method's record for ``run``'s cell and seed; each trained at ``lrs[(task, model, method)]``
    (test) or at ``run.lr`` (a tuning trial)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, base, masks = ablation_masks(run, cfg)
    score_s = round(time.perf_counter() - start, 2)
    records = []
    for method in METHODS:
        lr = run.lr if lrs is None else lrs[(run.task, run.model, method)]
        gm = _with_masks(base, masks[method])
        unshare(gm, model)  # each method trains its own copy of the same initialisation
        info = _mask_info(model, masks[method], tuple(base.example_inputs[0].shape))
        accuracies = train_eval(gm, task(run.task), cfg.steps[run.task], lr, cfg, run.seed)
        records.append({**run.__dict__, "method": method, "lr": lr, **info, **accuracies, "score_s": score_s,
                        "layers": {n: round(d, 6) for n, d in layer_densities(masks[method]).items()},
                        "protocol": cfg.protocol()})
    return records


def _entry(rs: list[dict]) -> str:
    """mean +- std test accuracy over the seeds, their count, the learning rate, layers emptied."""
    if not rs:
        return "-"
    acc = [r["test_acc"] for r in rs]
    spread = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
    emptied = sum(r["collapsed_layers"] for r in rs) / len(rs)
    return f"{statistics.fmean(acc):.1f}{spread} (n={len(rs)}, lr {rs[0]['lr']:g}, {emptied:.1f} emptied)"


def table(records: list[dict]) -> str:
    """Test accuracy per densities (rows) x ranking (columns), and the global masks; one block per cell."""
    test = [r for r in records if r.get("phase") == "test"]
    out = []
    for cell in sorted({(r["task"], r["model"], r["level"]) for r in test}):
        mine = {m: [r for r in test if (r["task"], r["model"], r["level"]) == cell and r["method"] == m]
                for m in METHODS}
        out += [f"### {cell[0]} / {cell[1]} at {cell[2] * 100:g} % density", "",
                f"Global masks: px {_entry(mine['px'])}; synflow {_entry(mine['synflow'])}.", "",
                "| densities of \\ ranking | " + " | ".join(RANKINGS) + " |",
                "|---|" + "---|" * len(RANKINGS)]
        out += [f"| {d} | " + " | ".join(_entry(mine[f"{r}@{d}"]) for r in RANKINGS) + " |" for d in CRITERIA]
        out.append("")
    return "\n".join(out)


def write_table(results: Path) -> str:
    """The table of every non-quick record in ``results``; written into docs/pai.md between its markers
    when ``results`` is the committed file."""
    text = table([r for r in load(results) if not r["protocol"].get("quick")])
    if Path(results).resolve() == RESULTS:
        write_between(DOC, MARKER, text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 rounds, 30 steps, one learning rate")
    parser.add_argument("--tasks", nargs="+", default=["mnist5k"])
    parser.add_argument("--models", nargs="+", default=["plain_cnn", "resnet8"], choices=list(MODELS))
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--table", action="store_true", help="only rebuild the table from --results")
    args = parser.parse_args(argv)
    if args.table:
        print(write_table(args.results or RESULTS))
        return
    cfg = Config(steps={t: 30 if args.quick else 1200 for t in args.tasks}, rounds=5 if args.quick else 100,
                 lrs=(0.01,) if args.quick else (0.01, 0.03), quick=args.quick)
    tune = [Run(t, m, "ablation", "irregular", args.density, TUNE_SEED, lr, "tune")
            for t in args.tasks for m in args.models for lr in cfg.lrs]
    run_all(tune, cfg, args.results, args.jobs, args.resume, None, execute, lambda run: METHODS)
    tuned = [r for r in load(args.results) if r.get("protocol") == cfg.protocol()] if args.results else []
    lrs = {(t, m, x): chosen_lr(tuned, t, m, x, cfg) for t in args.tasks for m in args.models for x in METHODS}
    test = [Run(t, m, "ablation", "irregular", args.density, s, 0.0)
            for s in range(1 if args.quick else args.seeds) for t in args.tasks for m in args.models]
    run_all(test, cfg, args.results, args.jobs, args.resume, lrs, execute, lambda run: METHODS)
    text = write_table(args.results) if args.results else ""
    print(text)
    if args.out:
        args.out.write_text(text + "\n")

if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
