"""Recovery after pruning: distillation from the dense model versus plain fine-tuning versus no recovery,
each recovery method tuned on the validation split with the same number of trials.

For each task, model and seed the dense model (the teacher) is trained once (``--dense-epochs``, SGD lr
0.05, cosine; cached under ``--work``). For each MAC reduction r it is pruned to 1/r of its MACs (one
global L2 threshold over mean-normalised group scores, groups capped at 90 %: the ``finetune-50``
recipe's pruning at another budget), and then, through the ``finetune`` pass, at equal epochs:

- none: the pruned model as it is;
- bn: BatchNorm statistics recomputed on 20 training batches, no training (where the two below start);
- finetune: bn, then ``--epochs`` epochs of SGD (momentum 0.9, weight decay 5e-4, cosine) on the task
  loss; its trials (``FINETUNE_TRIALS``) are learning rates;
- distill: the same, on 0.5 x the task loss + 0.5 x T^2 KL(dense || pruned) at T = 4, plus, for
  ``distill = "features"``, the squared error of the per-channel-norm outputs at the kept channels; its
  trials (``DISTILL_TRIALS``) are logits or features times two learning rates.

Every trial runs on every seed; a method's setting for a (task, model, ratio) row is the trial with the
best mean *validation* accuracy over the seeds, and the table reports that trial's *test* accuracy
(nothing is chosen on the test split). One JSON line per (task, model, seed, ratio, method, trial) is
appended to ``--results``; a rerun skips what is there; ``--table`` rewrites docs/recovery.md's tables.

Run:  python benchmarks/recovery.py --quick     # seconds: digits 8x8, resnet20, 2x, 1 seed, 1 trial each
      python benchmarks/recovery.py --jobs 2    # the docs' protocol (see docs/recovery.md for its wall time)
      python benchmarks/recovery.py --table     # only rebuild the tables from the results
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results  # noqa: E402
import _train  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import graphprune  # noqa: E402
import models_zoo  # noqa: E402
from graphprune.training.evaluate import evaluate  # noqa: E402
from models_zoo.data import TASKS  # noqa: E402

METHODS = ("none", "bn", "finetune", "distill")
# The protocol runs the first PROTOCOL_TRIALS of each (all four; --trials N for fewer, see docs/recovery.md)
FINETUNE_TRIALS = tuple({"lr": lr} for lr in (0.01, 0.02, 0.005, 0.04))
DISTILL_TRIALS = tuple({"distill": mode, "lr": lr, "distill_weight": 0.5, "temperature": 4.0, "feature_weight": 1.0}
                       for lr in (0.01, 0.03) for mode in ("logits", "features"))
PROTOCOL_TRIALS = 4
TRIALS = {"none": ({},), "bn": ({},), "finetune": FINETUNE_TRIALS, "distill": DISTILL_TRIALS}
RESULTS = REPO / "docs" / "results" / "recovery.jsonl"
DOC = REPO / "docs" / "recovery.md"
TABLES = {"recovery-table": "table", "recovery-trials": "trials_table"}


def train_dense(model: nn.Module, task: Any, epochs: int, seed: int) -> None:
    _train.train_dense(model, task, epochs, seed,
                       lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4))


def dense_model(args: argparse.Namespace, task: Any, name: str, seed: int) -> tuple[nn.Module, tuple]:
    """The trained dense model (from the cache when it is there) and its example inputs."""
    model, inputs = models_zoo.load(f"zoo:{name}", input_size=args.image_size)
    path = Path(args.work) / f"dense_{task.name}_{name}_{args.image_size}_{seed}_{args.dense_epochs}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for m in model.modules():  # another seed, another initialisation
                if hasattr(m, "reset_parameters") and not isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_parameters()
        train_dense(model, task, args.dense_epochs, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval(), inputs


def plan(ratio: float, method: str, trial: dict[str, Any], epochs: float, seed: int) -> dict[str, Any]:
    finetune = {"epochs": 0 if method == "bn" else epochs, "optimizer": "sgd", "lr": 0.01, "schedule": "cosine",
                "distill": False, "recalibrate_bn": 20, "seed": seed, "progress": False, **trial}
    prune = {"prune": [{"select": "*", "budget": {"macs": 1 / ratio}, "score": "l2"}],
             "allocate": {"scope": "global", "max_per_group": 0.9}}
    return prune if method == "none" else {**prune, "finetune": finetune}


def run_one(model: nn.Module, inputs: tuple, task: Any, ratio: float, method: str, trial: dict[str, Any],
            epochs: float, seed: int) -> dict[str, Any]:
    """One pruned-and-recovered model's validation and test accuracy."""
    start = time.perf_counter()
    settings = plan(ratio, method, trial, epochs, seed)
    train = dataclasses.replace(task.train, seed=seed)  # this seed's batch order
    result = graphprune.compile(model, inputs, plan=settings, data=train, val_data=task.val)
    report = result.report
    return {"val_acc": round(evaluate(result.module, task.val)["acc"], 5),
            "test_acc": round(evaluate(result.module, task.test)["acc"], 5),
            "dense_val_acc": round(evaluate(model, task.val)["acc"], 5),
            "dense_acc": round(evaluate(model, task.test)["acc"], 5),
            "macs_kept": round(report.macs_after / report.macs_before, 4), "params_after": report.params_after,
            "seconds": round(time.perf_counter() - start, 2)}


load_results = _results.load  # one JSON object per line; none if the file does not exist


def _key(r: dict[str, Any]) -> tuple:
    keys = ("task", "model", "seed", "ratio", "method", "epochs", "dense_epochs", "image_size")
    return (*(r[k] for k in keys), json.dumps(r["trial"], sort_keys=True))


def run_unit(unit: tuple[argparse.Namespace, str, str, int]) -> int:
    """Every ratio, method and trial of one (task, model, seed): the dense model is trained once for them."""
    args, task_name, name, seed = unit
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    done = {_key(r) for r in load_results(results)}
    task = TASKS[task_name](size=args.image_size, seed=0)
    model, inputs = dense_model(args, task, name, seed)
    count = 0
    for ratio in args.ratios:
        for method in args.methods:
            for trial in TRIALS[method][:args.trials]:
                record = {"task": task_name, "model": name, "seed": seed, "ratio": ratio, "method": method,
                          "trial": trial, "epochs": args.epochs, "dense_epochs": args.dense_epochs,
                          "image_size": args.image_size}
                if _key(record) in done:
                    continue
                record.update(run_one(model, inputs, task, ratio, method, trial, args.epochs, seed))
                line = json.dumps(record) + "\n"
                print(line, end="", flush=True)
                with results.open("a") as f:  # one short O_APPEND write: parallel workers never interleave
                    f.write(line)
                count += 1
    return count


def run(args: argparse.Namespace) -> float:
    """Run every unit (``--jobs`` processes, the costliest units first); the wall time in seconds."""
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    units = [(args, t, m, s) for t in args.tasks for m in sorted(args.models, key=lambda m: m != "vgg11_bn")
             for s in args.seeds]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            list(pool.imap_unordered(run_unit, units))
    else:
        for unit in units:
            run_unit(unit)
    wall = time.perf_counter() - start
    print(f"wall time {wall:.0f} s", flush=True)
    return wall


def _rows(records: list[dict[str, Any]], trials: int = PROTOCOL_TRIALS
          ) -> dict[tuple, dict[str, dict[str, dict[int, dict[str, Any]]]]]:
    """(task, model, ratio, epochs, dense epochs) -> method -> trial label -> seed -> record, in trial order,
    over each method's first ``trials`` trials (the same number for every method)."""
    rows: dict[tuple, dict[str, dict[str, dict[int, dict[str, Any]]]]] = {}
    allowed = {m: [json.dumps(t, sort_keys=True) for t in TRIALS[m][:trials]] for m in TRIALS}
    records = sorted((r for r in records if json.dumps(r["trial"], sort_keys=True) in allowed[r["method"]]),
                     key=lambda r: allowed[r["method"]].index(json.dumps(r["trial"], sort_keys=True)))
    for r in records:
        row = (r["task"], r["model"], r["ratio"], r["epochs"], r["dense_epochs"])
        rows.setdefault(row, {}).setdefault(r["method"], {}).setdefault(label(r["trial"]), {})[r["seed"]] = r
    return dict(sorted(rows.items()))


def label(trial: dict[str, Any]) -> str:
    mode = trial.get("distill")
    return ", ".join([*([str(mode)] if mode else []), *([f"lr {trial['lr']:g}"] if "lr" in trial else [])]) or "-"


def chosen(trials: dict[str, dict[int, dict[str, Any]]]) -> str | None:
    """The trial with the best mean validation accuracy over the seeds every trial has run on (the first
    such trial on a tie). Why validation: the test split then stays unseen by every choice."""
    if not trials:
        return None
    seeds = set.intersection(*(set(by_seed) for by_seed in trials.values()))
    return max(trials, key=lambda t: statistics.mean(trials[t][s]["val_acc"] for s in seeds)) if seeds else None


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values) * 100
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {statistics.stdev(values) * 100:.1f}"


def _gap(distill: dict[int, dict[str, Any]], finetune: dict[int, dict[str, Any]]) -> str:
    """Mean over seeds of the per-seed test difference (the same pruned model and data order in both)."""
    seeds = sorted(set(distill) & set(finetune))
    if not seeds:
        return "-"
    diffs = [(distill[s]["test_acc"] - finetune[s]["test_acc"]) * 100 for s in seeds]
    mean = statistics.mean(diffs)
    return f"{mean:+.1f}" if len(diffs) == 1 else f"{mean:+.1f} ± {statistics.stdev(diffs):.1f}"


def table(records: list[dict[str, Any]]) -> str:
    """Test accuracy, mean +- std over seeds, of each method's validation-chosen trial per row."""
    head = ["task", "model", "MACs", "epochs (dense, recovery)", "seeds", "dense", *METHODS,
            "distill - finetune (per seed)", "finetune chosen", "distill chosen"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row, methods in _rows(records).items():
        picks = {m: chosen(methods.get(m, {})) for m in METHODS}
        runs = {m: methods[m][p] if p else {} for m, p in picks.items()}
        seeds = max(len(v) for v in runs.values())
        dense = _cell([r["dense_acc"] for r in next((v for v in runs.values() if v), {}).values()])
        cells = [_cell([r["test_acc"] for r in runs[m].values()]) for m in METHODS]
        lines.append(f"| {row[0]} | {row[1]} | 1/{row[2]:g} | {row[4]:g}, {row[3]:g} | {seeds} | {dense} | "
                     + " | ".join(cells) + f" | {_gap(runs['distill'], runs['finetune'])} | "
                     f"{picks['finetune'] or '-'} | {picks['distill'] or '-'} |")
    return "\n".join(lines)


def trials_table(records: list[dict[str, Any]]) -> str:
    """Every trial of the tuned methods: mean validation accuracy (what chose) and mean test accuracy."""
    lines = ["| model | MACs | method | trial | validation | test | chosen |", "|---" * 7 + "|"]
    for row, methods in _rows(records).items():
        for method in ("finetune", "distill"):
            trials = methods.get(method, {})
            pick = chosen(trials)
            for name, by_seed in trials.items():
                val = _cell([r["val_acc"] for r in by_seed.values()])
                test = _cell([r["test_acc"] for r in by_seed.values()])
                lines.append(f"| {row[1]} | 1/{row[2]:g} | {method} | {name} | {val} | {test} | "
                             f"{'yes' if name == pick else ''} |")
    return "\n".join(lines)


def write_tables(results: Path, doc: Path | None) -> str:
    """The tables of ``results``, each also written between its markers in ``doc`` when given."""
    records = load_results(results)
    texts = {marker: globals()[fn](records) for marker, fn in TABLES.items()}
    for marker, body in texts.items() if doc is not None else ():
        _results.write_between(doc, marker, body)
    return "\n\n".join(texts.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist5k"])
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg11_bn"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[2.0, 4.0], help="MAC reductions")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=float, default=2.0, help="recovery epochs (every method and trial alike)")
    parser.add_argument("--dense-epochs", type=int, default=15)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--trials", type=int, default=PROTOCOL_TRIALS, help="the first N trials of each tuned method")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--jobs", type=int, default=1, help="processes, one (task, model, seed) each at a time")
    parser.add_argument("--work", default="/tmp/graphprune-recovery", help="cache of trained dense models")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true",
                        help="digits at 8x8, resnet20, 2x, seed 0, 1 trial each, 0.5 recovery / 1 dense epoch")
    parser.add_argument("--table", action="store_true", help="only rebuild the docs tables from --results")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.models, args.ratios, args.seeds = ["digits"], ["resnet20"], [2.0], [0]
        args.trials, args.epochs, args.dense_epochs, args.image_size = 1, 0.5, 1, 8
        if args.results == str(RESULTS):
            args.results = str(Path(args.work) / "quick.jsonl")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.table:
        run(args)
    print(write_tables(Path(args.results), DOC if Path(args.results) == RESULTS else None))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
