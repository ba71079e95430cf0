"""Which statistics form recovers better after fine-tuning: ``"exact"`` (LayerNorm / means over the
original width: the pruned model starts as the masked dense model) or ``"renormalize"`` (over the kept
channels: what the pruned graph computes without the rewrite).

For each model and seed a small LayerNorm network is trained dense (AdamW, cosine) on a task of
``models_zoo.data`` (the bundled digits by default), pruned once at ``--sparsity`` of every channel group
by L2 magnitude (the hidden width, which every LayerNorm reads, among them; both forms remove the same
channels), and fine-tuned through the ``finetune`` pass with each form on the same budget (``--epochs``
of AdamW, same data order). Test accuracy right after pruning and after fine-tuning; nothing is tuned
on the test split. One JSON line per (model, seed, form) goes to ``--results``; a rerun skips what is
there; the table (mean ± std over seeds, and the per-seed difference exact - renormalize) is printed
and written into docs/statistics.md.

Models: ``vit`` (torchvision VisionTransformer: 16x16 input, patch 4, 2 pre-norm blocks, width 64) and
``convnext`` (torchvision ConvNeXt: stages of width 32 and 64, one block each, LayerNorm2d downsampling).

Run:  python benchmarks/statistics_rewrite.py            # 2 models x 5 seeds, ~10 minutes on 2 cores
      python benchmarks/statistics_rewrite.py --quick    # vit, seed 0, 1 epoch (smoke)
      python benchmarks/statistics_rewrite.py --table    # only rebuild the table from the results
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
from torchvision.models import convnext, vision_transformer  # noqa: E402

import graphprune  # noqa: E402
from graphprune.training.evaluate import evaluate  # noqa: E402
from models_zoo.data import TASKS  # noqa: E402

FORMS = ("exact", "renormalize")
RESULTS = REPO / "docs" / "results" / "statistics_rewrite.jsonl"
DOC = REPO / "docs" / "statistics.md"
TABLE_START, TABLE_END = "<!-- statistics-table: start -->", "<!-- statistics-table: end -->"


def build(name: str, size: int, classes: int) -> nn.Module:
    if name == "vit":
        return vision_transformer.VisionTransformer(image_size=size, patch_size=4, num_layers=2, num_heads=4,
                                                    hidden_dim=64, mlp_dim=128, num_classes=classes)
    blocks = [convnext.CNBlockConfig(32, 64, 1), convnext.CNBlockConfig(64, None, 1)]
    return convnext.ConvNeXt(blocks, num_classes=classes)


def train_dense(model: nn.Module, task: Any, epochs: int, seed: int) -> nn.Module:
    return _train.train_dense(model, task, epochs, seed, lambda p: torch.optim.AdamW(p, lr=2e-3, weight_decay=0.05))


def run_one(model: nn.Module, task: Any, form: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    finetune = {"epochs": args.epochs, "optimizer": "adamw", "lr": args.lr, "schedule": "cosine", "seed": seed,
                "progress": False}
    plan = {"sparsity": args.sparsity, "statistics": form, "finetune": finetune}
    train = dataclasses.replace(task.train, seed=seed)
    result = graphprune.compile(model, (torch.zeros(task.input_shape),), plan=plan, data=train, val_data=task.test)
    accuracy = result.report.artifacts["finetune"]["accuracy"]
    return {"dense_acc": round(evaluate(model, task.test)["acc"], 5), "pruned_acc": accuracy["pruned"],
            "recovered_acc": accuracy["recovered"], "params_kept": round(result.report.params_after /
                                                                        result.report.params_before, 4),
            "inexact_reasons": len(result.report.inexact), "seconds": round(time.perf_counter() - start, 2)}


load_results = _results.load  # one JSON object per line; none if the file does not exist


KEYS = ("task", "model", "seed", "form", "sparsity", "epochs", "dense_epochs", "lr")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    done = {tuple(r[k] for k in KEYS) for r in load_results(results)}
    task = TASKS[args.task](size=args.image_size, seed=0)
    for name in args.models:
        for seed in args.seeds:
            records = [{"task": args.task, "model": name, "seed": seed, "form": form, "sparsity": args.sparsity,
                        "epochs": args.epochs, "dense_epochs": args.dense_epochs, "lr": args.lr} for form in FORMS]
            todo = [r for r in records if tuple(r[k] for k in KEYS) not in done]
            if not todo:
                continue
            torch.manual_seed(seed)
            model = train_dense(build(name, args.image_size, task.num_classes), task, args.dense_epochs, seed)
            for record in todo:
                record.update(run_one(model, task, record["form"], args, seed))
                print(json.dumps(record), flush=True)
                results.parent.mkdir(parents=True, exist_ok=True)
                with results.open("a") as f:
                    f.write(json.dumps(record) + "\n")


def table(records: list[dict[str, Any]]) -> str:
    """Per (task, model, sparsity, epochs): dense, then each form's accuracy after pruning and after
    fine-tuning (mean ± std over seeds, %), and the per-seed gain of exact over renormalize."""
    rows: dict[tuple, dict[str, dict[int, dict[str, Any]]]] = {}
    for r in records:
        key = (r["task"], r["model"], r["sparsity"], r["epochs"])
        rows.setdefault(key, {}).setdefault(r["form"], {})[r["seed"]] = r
    lines = ["| task | model | sparsity | fine-tune epochs | seeds | dense | exact: pruned | exact: fine-tuned | "
             "renormalize: pruned | renormalize: fine-tuned | exact - renormalize (fine-tuned) |", "|---" * 11 + "|"]
    for key, forms in sorted(rows.items()):
        seeds = sorted(set.intersection(*(set(forms.get(f, {})) for f in FORMS)))
        if not seeds:
            continue
        pick = {f: [forms[f][s] for s in seeds] for f in FORMS}
        cells = [_cell([r[k] for r in pick[f]]) for f in FORMS for k in ("pruned_acc", "recovered_acc")]
        gain = _cell([a["recovered_acc"] - b["recovered_acc"] for a, b in zip(pick["exact"], pick["renormalize"])],
                     signed=True)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]:g} | {key[3]:g} | {len(seeds)} | "
                     f"{_cell([r['dense_acc'] for r in pick['exact']])} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def _cell(values: list[float], signed: bool = False) -> str:
    mean = statistics.mean(values) * 100
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return text if len(values) == 1 else f"{text} ± {statistics.stdev(values) * 100:.1f}"


def write_table(results: Path, doc: Path | None) -> str:
    text = table(load_results(results))
    if doc is not None and doc.exists() and TABLE_START in doc.read_text():
        before, rest = doc.read_text().split(TABLE_START, 1)
        doc.write_text(f"{before}{TABLE_START}\n{text}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--models", nargs="+", default=["vit", "convnext"], choices=["vit", "convnext"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--epochs", type=float, default=3.0, help="fine-tuning epochs, each form alike")
    parser.add_argument("--dense-epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate (AdamW, cosine)")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true", help="vit, seed 0, 1 epoch, 3 dense epochs")
    parser.add_argument("--table", action="store_true", help="only rebuild the docs table from --results")
    args = parser.parse_args()
    if args.quick:
        args.models, args.seeds, args.epochs, args.dense_epochs = ["vit"], [0], 1.0, 3
        args.results = "/tmp/graphprune-statistics-quick.jsonl"
    if not args.table:
        run(args)
    print(write_table(Path(args.results), DOC if Path(args.results) == RESULTS else None))


if __name__ == "__main__":
    main()
