"""Compile cost against graph size: seconds per graph node, from resnet18 to a ~2,000-layer generated net.

Each model compiles (``graphprune.compile(model, (x,), sparsity=0.5)``, default plan) in a fresh process,
``--repeats`` times; the table gives the median wall and CPU seconds, the traced graph's node count and
the time per node. Flat microseconds per node mean compile cost linear in graph size. The generated nets
(``deep:N``) are N residual blocks of conv-BN-ReLU at a small width (16 channels, 32x32 input), so their
cost is the graph's, not the weights'; torchvision models run at 64x64 for the same reason.

    python benchmarks/compile_scaling.py                      # resnet18 .. deep:700 (about 2,100 layers)
    python benchmarks/compile_scaling.py --models resnet18,deep:100 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = ("resnet18", "resnet50", "resnet152", "deep:100", "deep:300", "deep:700")


def build(name: str):
    """The model and its input: torchvision by name (64 px), or ``deep:N`` (N blocks of 3 layers each)."""
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(0)
    if not name.startswith("deep:"):
        return torchvision.models.get_model(name, weights=None).eval(), torch.randn(1, 3, 64, 64)

    class Block(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
            self.bn, self.act = nn.BatchNorm2d(width), nn.ReLU()

        def forward(self, x):
            return x + self.act(self.bn(self.conv(x)))

    blocks = int(name.split(":", 1)[1])
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *(Block(16) for _ in range(blocks)),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    return model.eval(), torch.randn(1, 3, 32, 32)


def measure(name: str) -> dict:
    sys.path.insert(0, str(REPO))
    import graphprune
    import passes  # noqa: F401 - the pass registry, imported before the clock as compile_speed.py does

    compile_fn = graphprune.compile
    model, x = build(name)
    layers = sum(1 for m in model.modules() if not list(m.children()))
    wall, cpu = time.perf_counter(), time.process_time()
    result = compile_fn(model, (x,), sparsity=0.5)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    nodes = len(result.state.gm.graph.nodes) if result.state is not None else None
    return {"model": name, "wall": wall, "cpu": cpu, "layers": layers, "nodes": nodes,
            "seconds": result.report.seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", help="child mode: measure one model, print JSON")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(args.one)))
        return 0
    load_before = os.getloadavg()
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True).stdout
            runs += [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
        if not runs:
            print(f"{name}: failed", file=sys.stderr)
            continue
        wall, cpu = statistics.median(r["wall"] for r in runs), statistics.median(r["cpu"] for r in runs)
        rows.append({"model": name, "layers": runs[0]["layers"], "nodes": runs[0]["nodes"], "wall": wall, "cpu": cpu,
                     "us_per_node_wall": 1e6 * wall / runs[0]["nodes"], "us_per_node_cpu": 1e6 * cpu / runs[0]["nodes"],
                     "runs": runs})
        print(f"{name}: {wall:.3f} s wall, {cpu:.3f} s cpu, {runs[0]['nodes']} nodes", file=sys.stderr, flush=True)
    print("| model | layers | graph nodes | wall s | CPU s | wall us/node | CPU us/node |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['layers']} | {r['nodes']} | {r['wall']:.3f} | {r['cpu']:.3f} | "
              f"{r['us_per_node_wall']:.0f} | {r['us_per_node_cpu']:.0f} |")
    load_after = os.getloadavg()
    print(f"\nload average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end; "
          f"medians of {args.repeats} fresh-process runs")
    if args.json_out:
        args.json_out.write_text(json.dumps({"load": [load_before, load_after], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
