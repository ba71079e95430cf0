"""Pruning-at-initialisation benchmark: random, magnitude, SNIP, GraSP, SynFlow and PX.

What is measured
----------------
For each task (scikit-learn digits upsampled to 16x16; the procedural ``shapes`` task, 2000 train /
1000 test images at 16x16), each model (``models_zoo.small:small_cnn``, a plain 4-conv CNN, and
``models_zoo.small:resnet8``, the CIFAR ResNet family at one block per stage), each seed (model
initialisation, training order and pruning batch) and each criterion:

* **irregular**: score at initialisation through the compiler's passes (``trace`` ->
  ``analyze-channels`` -> ``score-<criterion>`` -> ``apply-masks``, global threshold) at weight
  densities 20/10/5/2/1 %, then train the masked GraphModule (masks live in its forward);
* **structured**: the same per-weight scores summed over each pruning group's channels
  (``allocate`` removes the same fraction of every group, ``remove-channels`` makes the network
  physically smaller) at 50 % and 75 % channel sparsity, then train the smaller network;
* **dense**: the unpruned model with the same training, for reference.

Every run gets the same training budget (Adam, one-cycle learning rate, ``--steps`` batches of 64 per
task) and reports test accuracy; the table gives mean +- std over seeds. Data-driven criteria (SNIP,
GraSP, PX) all see the same class-balanced pruning batch (``--per-class`` examples of each class).
SynFlow and PX prune iteratively over ``--rounds`` rounds (default 20 to fit the time budget: the
paper uses 100, ``--rounds 100`` runs that; ``--quick`` uses 5); for the structured variant they score
once, on the dense model. Scoring wall time (the
score pass alone) is reported relative to SNIP. Layer collapse is counted two ways: a layer that keeps
no weight ("emptied"; in a ResNet a whole branch may go while the skip path still connects), and a
network with no input->output path left ("disconnected", ``graphprune.scoring.path_count == 0``).

    python benchmarks/pai.py                 # the full grid (~25 min on 2 CPU cores)
    python benchmarks/pai.py --quick         # 1 seed, 2 densities, short training: a smoke run
    python benchmarks/pai.py --out docs/pai.md --json pai.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.passes import Pass, run_pipeline  # noqa: E402
from graphprune.scoring import path_count  # noqa: E402
from graphprune.state import CompileState, Options  # noqa: E402
from graphprune.trace import unshare  # noqa: E402
from models_zoo.data import Task, class_balanced, digits_task, shapes_task  # noqa: E402
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
        _TASKS[name] = digits_task(SIZE) if name == "digits" else shapes_task(SIZE, train=2000, test=1000)
    return _TASKS[name]


def score_pass(method: str, rounds: int, density: float) -> Pass:
    return {"random": lambda: ScoreRandom(seed=0), "magnitude": lambda: ScoreWeightMagnitude(p=1),
            "snip": lambda: ScoreSnip(), "grasp": lambda: ScoreGrasp(),
            "synflow": lambda: ScoreSynflow(rounds=rounds, density=density),
            "px": lambda: ScorePx(rounds=rounds, density=density)}[method]()


def prune(run: Run, cfg: Config) -> tuple[torch.nn.Module, dict]:
    """The pruned (or masked) GraphModule and what the passes recorded."""
    model, inputs = MODELS[run.model](SIZE, seed=run.seed)
    if run.kind == "dense":
        return model, {"score_s": 0.0, "density": 1.0}
    t = task(run.task)
    x, y = class_balanced(t.train.x, t.train.y, cfg.per_class, seed=run.seed)
    sparsity = 1 - run.level if run.kind == "irregular" else run.level
    state = CompileState(run.model, model, inputs, Options(sparsity=sparsity, score=run.method))
    state = run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])
    state = state.with_(data=[(x, y)])
    if run.kind == "irregular":
        scorer = score_pass(run.method, cfg.rounds, run.level)
        state = run_pipeline(state, [scorer, ApplyMasks(criterion=run.method, density=run.level)])
        layers = state.artifacts["apply-masks"]["layers"]
        info = {"density": state.artifacts["apply-masks"]["density"],
                "emptied": sum(v == 0 for v in layers.values()),
                "disconnected": path_count(model, state.masks, tuple(inputs[0].shape)) == 0}
    else:
        scorer = score_pass(run.method, 1, 1.0)
        state = run_pipeline(state, [scorer, Allocate(), RemoveChannels()])
        info = {"macs": state.macs["pruned"] / state.macs["dense"]}
    info["score_s"] = state.artifacts[scorer.name]["seconds"]
    gm = state.gm
    unshare(gm, model)
    return gm, info


def train_eval(model: torch.nn.Module, t: Task, steps: int, cfg: Config, seed: int) -> float:
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
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in t.test)
    return correct / len(t.test.y)


def execute(run: Run, cfg: Config) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, info = prune(run, cfg)
    accuracy = train_eval(model, task(run.task), cfg.steps[run.task], cfg, run.seed)
    return {**dataclasses.asdict(run), **info, "accuracy": accuracy, "seconds": time.perf_counter() - start}


def plan(seeds: int, densities: tuple[float, ...], sparsities: tuple[float, ...]) -> list[Run]:
    runs = []
    for t in ("digits", "shapes"):
        for m in MODELS:
            for s in range(seeds):
                runs.append(Run(t, m, "dense", "dense", 1.0, s))
                runs += [Run(t, m, meth, "irregular", d, s) for meth in METHODS for d in densities]
                runs += [Run(t, m, meth, "structured", c, s) for meth in METHODS for c in sparsities]
    cost = {"resnet8": 2.0, "small_cnn": 1.0}  # longest first, for load balance
    return sorted(runs, key=lambda r: -cost[r.model] * (1.5 if r.task == "shapes" else 1))


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    m = 100 * statistics.fmean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def _accuracy_cells(by: dict, task: str, model: str, method: str, kind: str, levels) -> str:
    """One table row's accuracy cells (mean ± std over seeds), the best method per level in bold."""
    cells = []
    for level in levels:
        cell = mean_std([r["accuracy"] for r in by[(task, model, method, kind, level)]])
        cells.append(f"**{cell}**" if _is_best(by, task, model, method, kind, level) else cell)
    return " | ".join(cells) + " |"


def tables(results: list[dict], densities, sparsities) -> str:
    by = defaultdict(list)
    for r in results:
        by[(r["task"], r["model"], r["method"], r["kind"], r["level"])].append(r)
    combos = sorted({(r["task"], r["model"]) for r in results})
    out = ["### Irregular (global threshold), test accuracy % (mean ± std over seeds)", "",
           "| task | model | method | dense | " + " | ".join(f"{100 * d:g} %" for d in densities) + " |",
           "|---|---|---|---|" + "---|" * len(densities)]
    for t, m in combos:
        dense = mean_std([r["accuracy"] for r in by[(t, m, "dense", "dense", 1.0)]])
        for meth in METHODS:
            out.append(f"| {t} | {m} | {meth} | {dense} | " + _accuracy_cells(by, t, m, meth, "irregular", densities))
    out += ["", "### Structured (channel scores, channels physically removed), test accuracy %", "",
            "| task | model | method | " + " | ".join(f"{100 * c:g} % channels removed" for c in sparsities) + " |",
            "|---|---|---|" + "---|" * len(sparsities)]
    for t, m in combos:
        for meth in METHODS:
            out.append(f"| {t} | {m} | {meth} | " + _accuracy_cells(by, t, m, meth, "structured", sparsities))
    out += ["", "### Scoring wall time relative to SNIP (irregular runs; absolute mean seconds in brackets)", "",
            "| model | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for m in sorted({r["model"] for r in results}):
        times = {meth: [r["score_s"] for r in results if r["model"] == m and r["method"] == meth
                        and r["kind"] == "irregular"] for meth in METHODS}
        snip = statistics.fmean(times["snip"]) if times["snip"] else math.nan
        cells = [f"{statistics.fmean(v) / snip:.1f}x ({statistics.fmean(v):.2f} s)" if v else "-"
                 for v in times.values()]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += ["", "### Layer collapse: runs with an emptied layer / runs disconnected (no input->output path), "
            "of all runs", "", "| model | method | " + " | ".join(f"{100 * d:g} %" for d in densities) + " |",
            "|---|---|" + "---|" * len(densities)]
    for m in sorted({r["model"] for r in results}):
        for meth in METHODS:
            cells = []
            for d in densities:
                runs = [r for r in results if r["model"] == m and r["method"] == meth and r["kind"] == "irregular"
                        and r["level"] == d]
                cells.append(f"{sum(r['emptied'] > 0 for r in runs)} / {sum(r['disconnected'] for r in runs)}"
                             f" of {len(runs)}")
            out.append(f"| {m} | {meth} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _is_best(by, t, m, meth, kind, level) -> bool:
    means = {x: statistics.fmean([r["accuracy"] for r in by[(t, m, x, kind, level)]])
             for x in METHODS if by[(t, m, x, kind, level)]}
    return bool(means) and meth in means and means[meth] == max(means.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, densities 10/1 %%, 50 %% channels, short")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20, help="SynFlow/PX iterative rounds (paper: 100)")
    parser.add_argument("--steps-digits", type=int, default=60)
    parser.add_argument("--steps-shapes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--out", type=Path, help="write the markdown tables here")
    parser.add_argument("--json", type=Path, help="append every run's record here as it finishes (JSON lines)")
    args = parser.parse_args(argv)
    densities, sparsities = (DENSITIES, CHANNEL_SPARSITIES) if not args.quick else ((0.1, 0.01), (0.5,))
    seeds = 1 if args.quick else args.seeds
    steps = {"digits": 30, "shapes": 30} if args.quick else {"digits": args.steps_digits, "shapes": args.steps_shapes}
    cfg = Config(steps=steps, rounds=5 if args.quick else args.rounds)
    runs = plan(seeds, densities, sparsities)
    print(f"{len(runs)} runs, {args.jobs} workers, rounds={cfg.rounds}, steps={steps}", file=sys.stderr)
    start = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("fork")) as pool:
        for i, result in enumerate(pool.map(execute, runs, [cfg] * len(runs), chunksize=1)):
            results.append(result)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(result) + "\n")
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{len(runs)} runs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    text = tables(results, densities, sparsities)
    footer = (f"\n\n{len(runs)} runs in {time.perf_counter() - start:.0f} s wall ({args.jobs} workers); "
              f"rounds={cfg.rounds}, steps={steps}, per_class={cfg.per_class}, seeds={seeds}.")
    print(text + footer)
    if args.out:
        args.out.write_text(text + footer + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
