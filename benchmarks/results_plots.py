"""Plots of the benchmarks' result records: what a person would rather see than read.

    python benchmarks/results_plots.py pai --out docs/results/pai.png   # reads docs/results/pai.jsonl

``pai``: one panel per (task, model), test accuracy (mean over seeds, bars: min to max) against weight
density on a log axis, one line per method, the dense model's mean as a dashed line. Test runs of the
main protocol only (tuning trials and smoke runs are left out). matplotlib is the ``plot`` extra.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import Record, load  # noqa: E402
from results_tables import DOCS, PAI_METHODS  # noqa: E402

STYLE = {"px": ("C3", "o", "-"), "synflow": ("C0", "s", "-"), "snip": ("C2", "^", "-"), "grasp": ("C4", "v", "-"),
         "random": ("C7", "x", ":"), "magnitude": ("C5", "d", ":"), "px-shuffled": ("C3", "o", ":"),
         "px-filter-shuffled": ("C1", "o", "--")}


def main_protocol(records: list[Record], include_quick: bool = False) -> list[Record]:
    """The test records of the protocol with the most of them (records of different protocols never
    mix; a file's other protocols are earlier or side runs)."""
    tests = [r for r in records if r.get("phase", "test") == "test"
             and (include_quick or not r.get("protocol", {}).get("quick"))]
    if not tests:
        return []
    counts = Counter(json.dumps(r["protocol"], sort_keys=True) for r in tests)
    main = counts.most_common(1)[0][0]
    return [r for r in tests if json.dumps(r["protocol"], sort_keys=True) == main]


def _series(records: list[Record], t: str, m: str, method: str) -> list[tuple[float, float, float, float]]:
    """(density %, mean, min, max) of one method's test accuracy in one cell."""
    by_level: dict[float, list[float]] = defaultdict(list)
    for r in records:
        if (r["task"], r["model"], r["method"], r["kind"]) == (t, m, method, "irregular"):
            by_level[r["level"]].append(r["test_acc"])
    return [(100 * lv, statistics.fmean(a), min(a), max(a)) for lv, a in sorted(by_level.items())]


def pai_figure(records: list[Record]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cells = sorted({(r["task"], r["model"]) for r in records})
    fig = Figure(figsize=(5 * max(1, len(cells)), 4), layout="constrained")
    FigureCanvasAgg(fig)
    for index, (t, m) in enumerate(cells):
        ax = fig.add_subplot(1, len(cells), index + 1)
        for method in PAI_METHODS:
            points = _series(records, t, m, method)
            if not points:
                continue
            colour, marker, line = STYLE[method]
            x, mean, lo, hi = zip(*points)
            ax.errorbar(x, mean, yerr=[[a - b for a, b in zip(mean, lo)], [b - a for a, b in zip(mean, hi)]],
                        color=colour, marker=marker, linestyle=line, capsize=2, label=method)
        dense = [r["test_acc"] for r in records if (r["task"], r["model"], r["kind"]) == (t, m, "dense")]
        if dense:
            ax.axhline(statistics.fmean(dense), color="k", linestyle="--", linewidth=0.8, label="dense")
        ax.set_xscale("log")
        ax.set(title=f"{t} / {m}", xlabel="weight density (%)", ylabel="test accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
    if cells:
        fig.axes[0].legend(fontsize=7, loc="upper left")
    return fig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("pai",))
    p.add_argument("--results", type=Path, help="the JSON-lines file (default docs/results/<kind>.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--include-quick", action="store_true", help="plot --quick smoke records too")
    args = p.parse_args(argv)
    records = main_protocol(load(args.results or DOCS / f"{args.kind}.jsonl"), args.include_quick)
    if not records:
        raise SystemExit(f"results_plots: no test records in {args.results or DOCS / (args.kind + '.jsonl')}")
    tmp = args.out.with_name(args.out.name + ".tmp.png")
    pai_figure(records).savefig(tmp, dpi=110)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(records)} records)")


if __name__ == "__main__":
    main()
