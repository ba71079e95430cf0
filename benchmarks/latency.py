"""Measured CPU latency of graphprune's output versus the dense model and versus Torch-Pruning's.

For each model (torchvision, random weights, 224x224, 50 % of every prunable channel group):

* graphprune: ``graphprune.compile(model, (x,), sparsity=0.5)``, then the fuse pass on the result
  (BatchNorm folded into the adjacent conv/linear, eval-mode dropout and identities dropped).
* Torch-Pruning (``torch_pruning`` 1.6): ``BasePruner`` (``MagnitudePruner`` where absent) with
  ``GroupMagnitudeImportance(p=2)``, ``pruning_ratio=0.5``, the final classifier ignored, multi-head
  attention heads as channel groups; exactly the setting of ``benchmarks/compile_speed.py``. For
  fairness its output is also fused with the same fuse pass (traced by graphprune's tracer with
  ``nn.MultiheadAttention`` kept a leaf, so TP's ViT keeps torch's fused attention kernel).
* gp+layout / TP+layout: each fused model through the layout pass with ``memory_format = "auto"``
  (``passes/layout.py``: channels-last where it is measured at least 3 % faster at batch 1, the same
  module timed at every batch): what a plan with ``[emit] layout = "auto"`` (the default under a
  latency budget) returns. The floor compares gp+layout with the dense model as the user has it.

Timing (``graphprune.latency``): fixed intra-op threads (default 1: the runner has 2 cores shared with
other jobs), ``torch.inference_mode``, denormals flushed, warm-up, then rounds in which every variant
runs once in turn; medians are reported. Batch 1 and batch 16 (fewer rounds at 16).

``--ort`` also exports dense and gp+fused to ONNX (graphprune.export) and times them in onnxruntime at
batch 1 with the same thread count.

Run:  python benchmarks/latency.py [--models resnet50 ...] [--batches 1 16] [--threads 1] [--ort] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODELS = ["resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "regnet_y_800mf", "convnext_tiny",
          "vit_b_16"]
CNNS = set(MODELS) - {"vit_b_16"}
SPARSITY = 0.5
VARIANTS = ["dense", "gp+fused", "gp+layout", "tp", "tp+fused", "tp+layout"]
BEST = "gp+layout"  # graphprune's output for latency: fused, in the memory format measured faster


def final_classifier(model: Any) -> Any:
    """The output layer kept unpruned: the last nn.Linear in module order (as compile_speed.py)."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)
               and not isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear)]
    return linears[-1]


def torch_pruning(model: Any, x: Any) -> Any:
    """Torch-Pruning's output at the same setting (the model is pruned in place: pass a copy)."""
    import torch_pruning as tp
    from torch import nn
    from torchvision.models.vision_transformer import VisionTransformer

    pruner_cls = getattr(tp.pruner, "BasePruner", None) or tp.pruner.MagnitudePruner
    heads = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    pruner = pruner_cls(model, example_inputs=x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                        pruning_ratio=SPARSITY, ignored_layers=[final_classifier(model)],
                        in_channel_groups={}, out_channel_groups=dict(heads), num_heads={})
    pruner.step()
    if isinstance(model, VisionTransformer):
        model.hidden_dim = model.conv_proj.out_channels  # torchvision's ViT reshapes with hidden_dim
    return model.eval()


def fused(module: Any, x: Any) -> Any:
    import torch.fx as fx
    from torch import nn

    from graphprune.trace import trace
    from passes.fuse import fuse

    gm = module if isinstance(module, fx.GraphModule) else trace(module, extra_leaves=(nn.MultiheadAttention,))
    return fuse(gm, (x,))[0]


def laid_out(module: Any, x: Any, threads: int) -> tuple[Any, str]:
    """``module`` through the layout pass with ``memory_format = "auto"`` (timed at batch 1): what a
    plan with ``[emit] layout = "auto"`` returns, and the format it chose."""
    from passes.layout import choose_layout

    chosen, record = choose_layout(module, (x,), "auto", threads=threads)
    return chosen, record["memory_format"]


def count_macs(module: Any, x: Any) -> int:
    """MACs of the graph graphprune traces (nn.MultiheadAttention decomposed into its matmuls: torch's
    fused attention kernel is invisible to FlopCounterMode, which would undercount ViT by a third)."""
    import torch.fx as fx

    from graphprune.trace import trace
    from graphprune.values import propagate_counting

    gm = module if isinstance(module, fx.GraphModule) else trace(module)
    return propagate_counting(gm, (x,))[1]


def build(name: str, x: Any, threads: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch
    import torchvision

    import graphprune

    torch.manual_seed(0)
    dense = torchvision.models.get_model(name, weights=None).eval()
    start = time.perf_counter()
    gp = graphprune.compile(dense, (x,), sparsity=SPARSITY).module
    gp_s = time.perf_counter() - start
    tp = torch_pruning(copy.deepcopy(dense), x)
    variants = {"dense": dense, "gp+fused": fused(gp, x), "tp": tp, "tp+fused": fused(tp, x)}
    variants["gp+layout"], gp_layout = laid_out(variants["gp+fused"], x, threads)
    variants["tp+layout"], tp_layout = laid_out(variants["tp+fused"], x, threads)
    variants = {k: variants[k] for k in VARIANTS}
    macs = {"dense": count_macs(dense, x), "gp": count_macs(gp, x), "tp": count_macs(tp, x)}
    with torch.no_grad():  # every variant of one model computes on the same input shape
        shapes = {k: tuple(v(x).shape) for k, v in variants.items()}
    assert len(set(shapes.values())) == 1, shapes
    info = {"macs_dense": macs["dense"], "macs_gp": macs["gp"], "macs_tp": macs["tp"],
            "macs_reduction_gp": macs["dense"] / macs["gp"], "macs_reduction_tp": macs["dense"] / macs["tp"],
            "compile_s": gp_s, "layout_gp": gp_layout, "layout_tp": tp_layout}
    return variants, info


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from graphprune.latency import latency_record

    x = torch.randn(1, 3, 224, 224)
    variants, info = build(name, x, args.threads)
    record = latency_record(variants, (x,), batches=args.batches,
                            repeats={b: args.repeats if b == 1 else args.repeats_large for b in args.batches},
                            warmup={b: 3 if b == 1 else 1 for b in args.batches}, num_threads=args.threads)
    row = {"model": name, **info, "latency": record}
    if args.ort:
        row["onnxruntime_b1"] = onnxruntime_b1(variants, x, args.threads, args.repeats)
    return row


def onnxruntime_b1(variants: dict[str, Any], x: Any, threads: int, repeats: int) -> dict[str, Any]:
    """dense and gp+fused exported with graphprune.export (ONNX) and timed in onnxruntime at batch 1."""
    import statistics
    import tempfile

    import onnxruntime as ort

    from graphprune.export import emit

    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in ("dense", "gp+fused"):
            path = Path(tmp) / f"{key.replace('+', '_')}.onnx"
            emit(variants[key], (x,), path, check=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            sessions[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = x.numpy()
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for i in range(repeats + 3):
        for key, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: feed})
            if i >= 3:
                samples[key].append((time.perf_counter() - start) * 1e3)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {"dense_ms": med["dense"], "gp+fused_ms": med["gp+fused"], "speedup": med["dense"] / med["gp+fused"]}


def _cell(row: dict[str, Any], batch: int, variant: str) -> str:
    t = row["latency"]["batches"][str(batch)][variant]
    return f"{t['median_ms']:.1f} ({t['speedup']:.2f}x)"


def _short(layout: str) -> str:
    return "CL" if layout == "channels_last" else "NCHW"


def table(rows: list[dict[str, Any]], batch: int) -> str:
    head = ["model", "MACs red. gp", "MACs red. TP", "layout gp/TP", "dense ms", "gp+fused", "gp+layout", "TP",
            "TP+fused", "TP+layout", "gp+fused x / MACs x", "gp+layout x / MACs x", "gp+layout vs TP",
            "gp+layout vs TP+layout"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        t = row["latency"]["batches"][str(batch)]
        red = row["macs_reduction_gp"]
        cells = [row["model"], f"{red:.2f}x", f"{row['macs_reduction_tp']:.2f}x",
                 f"{_short(row['layout_gp'])}/{_short(row['layout_tp'])}", f"{t['dense']['median_ms']:.1f}",
                 *(_cell(row, batch, v) for v in VARIANTS[1:]),
                 f"{t['gp+fused']['speedup'] / red:.2f}", f"{t[BEST]['speedup'] / red:.2f}",
                 f"{t['tp']['median_ms'] / t[BEST]['median_ms']:.2f}x",
                 f"{t['tp+layout']['median_ms'] / t[BEST]['median_ms']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measured_alone(name: str, args: argparse.Namespace, run: str) -> dict[str, Any]:
    """One model's row, measured in a fresh process: a model measured after others inherits their heap
    and cache state (dense mobilenet_v2 at batch 1 measured 16 ms after five other models, 20-24 ms
    alone in four fresh processes), and every model should be timed in the same conditions."""
    import subprocess
    import tempfile

    settings = ["--threads", str(args.threads), "--batches", *map(str, args.batches), "--repeats",
                str(args.repeats), "--repeats-large", str(args.repeats_large), *(["--ort"] if args.ort else [])]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.jsonl"
        subprocess.run([sys.executable, __file__, "--models", name, "--json", str(out), "--run", run, *settings],
                       check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="batch sizes (default 1 16)")
    parser.add_argument("--repeats", type=int, default=20, help="rounds at batch 1")
    parser.add_argument("--repeats-large", type=int, default=5, dest="repeats_large",
                        help="rounds at the batch sizes above 1")
    parser.add_argument("--ort", action="store_true", help="also time the ONNX export in onnxruntime (batch 1)")
    parser.add_argument("--json", type=Path, help="append one JSON line per model to this file")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # the run a child's record belongs to
    parser.add_argument("--table", action="store_true",
                        help="only rebuild docs/latency.md's floor table from docs/results/latency.jsonl")
    args = parser.parse_args(argv)
    if args.table:
        import _latency_floors

        print(_latency_floors.write_table())
        return 0

    import torch

    torch.set_flush_denormal(True)
    rows = []
    run = args.run or time.strftime("%Y-%m-%dT%H:%M", time.gmtime())
    for name in args.models:
        row = measured_alone(name, args, run) if len(args.models) > 1 else \
            {**measure(name, args), "run": run, "loadavg": [round(v, 2) for v in os.getloadavg()],
             "torch": torch.__version__}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    print(f"\nmedian ms (speedup over dense), {args.threads} thread(s), torch {torch.__version__}")
    for batch in args.batches:
        print(f"\nbatch {batch}\n{table(rows, batch)}")
    if args.ort:
        print("\nonnxruntime, batch 1: model | MACs red. | dense ms | gp+fused ms | speedup | speedup / MACs red.")
        for row in rows:
            o = row["onnxruntime_b1"]
            red = row["macs_reduction_gp"]
            print(f"| {row['model']} | {red:.2f}x | {o['dense_ms']:.2f} | {o['gp+fused_ms']:.2f} | "
                  f"{o['speedup']:.2f}x | {o['speedup'] / red:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
