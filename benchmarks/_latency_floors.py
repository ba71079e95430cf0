"""docs/latency.md's floor table, generated from the records ``benchmarks/latency.py --json`` writes.

Why generated: the floor is judged over several runs on a shared machine, so the table gives every
run's figure and the median and range, and it must be what the committed records say. Only records
measured with warm blocks (``latency.block``; the method since session 10) are read: the earlier
single-call rounds timed each small model with a cold cache and are not comparable.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results" / "latency.jsonl"
DOC = REPO / "docs" / "latency.md"
MARKER = "latency-floors"
BEST = "gp+layout"
MAC_FLOOR = 0.9


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def figures(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Per (model, batch): the runs' MAC reductions, speedup / MAC reduction, and time ratios to TP."""
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in records:
        if r.get("latency", {}).get("block") is None:
            continue
        for batch, t in r["latency"]["batches"].items():
            f = out.setdefault((r["model"], batch), {"red": [], "ratio": [], "tp": [], "tp_layout": [], "speedup": []})
            f["red"].append(r["macs_reduction_gp"])
            f["speedup"].append(t[BEST]["speedup"])
            f["ratio"].append(t[BEST]["speedup"] / r["macs_reduction_gp"])
            f["tp"].append(t["tp"]["median_ms"] / t[BEST]["median_ms"])
            f["tp_layout"].append(t["tp+layout"]["median_ms"] / t[BEST]["median_ms"])
    return out


def table(records: Iterable[dict[str, Any]]) -> str:
    head = ["model", "batch", "runs", "MACs red.", "gp+layout speedup, per run", "speedup ÷ MACs red.",
            "vs TP", "vs TP+layout", f"≥ {MAC_FLOOR} × MACs and ≥ TP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    found = figures(records)
    models = list(dict.fromkeys(model for model, _ in found))  # the order the runs measured them in
    for (model, batch), f in sorted(found.items(), key=lambda kv: (models.index(kv[0][0]), int(kv[0][1]))):
        met = statistics.median(f["ratio"]) >= MAC_FLOOR and statistics.median(f["tp"]) >= 1.0
        lines.append(f"| {model} | {batch} | {len(f['ratio'])} | {statistics.median(f['red']):.2f}x | "
                     f"{', '.join(f'{s:.2f}x' for s in f['speedup'])} | {_spread(f['ratio'])} | "
                     f"{_spread(f['tp'])} | {_spread(f['tp_layout'])} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


def write_table(results: Path = RESULTS, doc: Path = DOC) -> str:
    text = table(_results.load(results))
    _results.write_between(doc, MARKER, text)
    return text
