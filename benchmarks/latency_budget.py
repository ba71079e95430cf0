"""Latency budgets on real models, checked again in a fresh process.

For each model (torchvision, random weights, seed 0, batch-1 224x224 input): compile with
``budget = { latency = r }`` (1 thread; ``max_per_group = 0.9``), which measures and refits inside the
compile (``graphprune.latency_budget``); save the pruned module (``graphprune.loading.save_pt``); then, in
a *fresh* Python process, rebuild the dense model, load the pruned one and measure the fraction again
with the same round-robin method (rounds filling 3 s, or ``--rounds``). The table gives both measurements, the
compiles the loop needed, the MAC fraction of the result (MACs do not tell the time: that is why the
budget is measured) and the compile time; the load average before and after says how quiet the machine
was. JSON records go to ``--json`` when given.

    python benchmarks/latency_budget.py                          # resnet50, mobilenet_v2, vit_b_16 at 0.5
    python benchmarks/latency_budget.py --models resnet18 --ratios 0.5 0.3 --rounds 30
    python benchmarks/latency_budget.py --table    # docs/latency.md's table from docs/results/latency_budget.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402

FLOOR_MODELS = ("resnet50", "mobilenet_v2", "vit_b_16")
SESSION = 10  # the records' "session": 9 timed candidates in the compiling process, 10 in fresh ones
RESULTS = REPO / "docs" / "results" / "latency_budget.jsonl"
DOC = REPO / "docs" / "latency.md"


def dense(name: str):  # noqa: ANN201
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name).eval(), (torch.randn(1, 3, 224, 224),)


def measure_fresh(name: str, path: str, rounds: int | None, batch: int | None) -> float:
    """In this (fresh) process: the pruned module at ``path`` over the dense ``name``, measured."""
    import torch

    from graphprune.latency import measured_fraction, timing_inputs

    model, inputs = dense(name)
    inputs = timing_inputs(inputs, batch)
    pruned = torch.load(path, weights_only=False)
    return measured_fraction(lambda: model(*inputs), lambda: pruned(*inputs), [model, pruned], rounds=rounds)


def run_one(name: str, ratio: float, rounds: int | None, batch: int | None, work: Path) -> dict:
    import graphprune
    from graphprune.loading import save_pt

    model, inputs = dense(name)
    start = time.perf_counter()
    asked = {"latency": ratio, **({"batch": batch} if batch else {})}
    result = graphprune.compile(model, inputs, plan={"prune": [{"budget": asked}],
                                                     "allocate": {"max_per_group": 0.9}})
    seconds = time.perf_counter() - start
    path = work / f"{name}_{ratio}.pt"
    save_pt(result.module, path)
    extra = [*(["--rounds", str(rounds)] if rounds else []), *(["--batch", str(batch)] if batch else [])]
    fresh = subprocess.run([sys.executable, __file__, "--measure", name, str(path), *extra],
                           capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    budget = result.report.budget
    measured = float(fresh.stdout.strip().splitlines()[-1])
    return {"model": name, "batch": batch or 1, "asked": ratio, "compiles": len(budget["compiles"]),
            "in_compile": budget["achieved"],
            "fresh": round(measured, 4), "fresh_within": abs(measured - ratio) <= 0.05 * ratio,
            "macs_fraction": round(result.report.macs_after / result.report.macs_before, 4),
            "compile_s": round(seconds, 1), "history": budget["compiles"],
            "layout": result.report.artifacts.get("layout", {}).get("memory_format", "contiguous"),
            "measured_in": budget.get("measured_in"), "session": SESSION}


def table(records: list[dict]) -> str:
    lines = ["| session | model | batch | asked | compiles | measured in compile | measured in a fresh process | "
             "within 5 % | MACs kept | layout | compile s |", "|" + "---|" * 11]
    for r in records:
        lines.append(f"| {r.get('session', '')} | {r['model']} | {r['batch']} | {r['asked']:g} | {r['compiles']} "
                     f"| {r['in_compile']:.3f} | {r['fresh']:.3f} "
                     f"| {'yes' if r['fresh_within'] else 'NO'} | {r['macs_fraction']:.3f} "
                     f"| {r.get('layout', 'contiguous')} | {r['compile_s']:.1f} |")
    return "\n".join(lines)


def write_table(results: Path = RESULTS) -> str:
    """The table of the committed records, written between docs/latency.md's markers."""
    text = table([json.loads(line) for line in results.read_text().splitlines() if line.strip()])
    _results.write_between(DOC, "latency-budget", text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(FLOOR_MODELS))
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.5])
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of the fresh-process measurement (default: as the compile measures)")
    parser.add_argument("--batch", type=int, default=None, help="measure at this batch size (default 1)")
    parser.add_argument("--json", type=Path, help="append one JSON record per (model, ratio)")
    parser.add_argument("--table", action="store_true", help="only rebuild docs/latency.md's table from the records")
    parser.add_argument("--measure", nargs=2, metavar=("MODEL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.table:
        print(write_table())
        return
    import torch

    torch.set_num_threads(1)
    if args.measure:
        print(measure_fresh(*args.measure, args.rounds, args.batch))
        return
    load_before = os.getloadavg()[0]
    records = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.models:
            for ratio in args.ratios:
                records.append(run_one(name, ratio, args.rounds, args.batch, Path(work)))
                print(json.dumps(records[-1]), file=sys.stderr, flush=True)
                if args.json:
                    with args.json.open("a") as f:
                        f.write(json.dumps(records[-1]) + "\n")
    print(table(records))
    print(f"\nload average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} cores; "
          f"torch {torch.__version__}, 1 thread")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
