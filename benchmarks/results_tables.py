"""The docs tables, generated from the benchmarks' result records (``docs/results/*.jsonl``).

    python benchmarks/results_tables.py pai                       # reads docs/results/pai.jsonl
    python benchmarks/results_tables.py structadmm --out table.md # reads docs/results/structadmm.jsonl
    python benchmarks/results_tables.py pai --results /tmp/pai_quick.jsonl --include-quick

Records of different protocols (rounds, steps, initialisation, budgets...) are never averaged
together: each protocol gets its own section. Smoke records (``--quick``) are left out unless
``--include-quick``. Accuracies are in %, mean ± std over seeds (n = number of seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pai_tables import pai_floor_section, pai_paired_section, pai_tuning_section  # noqa: E402
from _results import PAI_FIELDS, STRUCTADMM_FIELDS, Record, check, load  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"
PAI_METHODS = ("random", "magnitude", "snip", "grasp", "synflow", "px", "px-shuffled", "px-filter-shuffled")
PAI_BASELINES = ("snip", "grasp", "synflow")  # what PX must match or beat (issue 14's floor)
ADMM_ORDER = ("dense", "admm", "magnitude", "tp")


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {std:.1f}"


def by_protocol(records: Iterable[Record], include_quick: bool) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if include_quick or not r.get("protocol", {}).get("quick"):
            out[json.dumps(r.get("protocol", {}), sort_keys=True)].append(r)
    return out


def _cell(records: list[Record], *key) -> list[Record]:
    return [r for r in records if (r["task"], r["model"], r["method"], r["kind"], r["level"]) == key]


def _accuracy_section(records: list[Record], kind: str, title: str, label: str) -> list[str]:
    """Accuracy by level for every (task, model, method); the best mean of each column in bold."""
    levels = sorted({r["level"] for r in records if r["kind"] == kind}, reverse=kind == "irregular")
    if not levels:
        return []
    out = [f"### {title} (mean ± std over seeds)", "",
           "| task | model | method | dense | " + " | ".join(label.format(100 * lv) for lv in levels) + " |",
           "|---|---|---|---|" + "---|" * len(levels)]
    for t, m in sorted({(r["task"], r["model"]) for r in records}):
        dense = mean_std([r["test_acc"] for r in _cell(records, t, m, "dense", "dense", 1.0)])
        accs = {(x, lv): [r["test_acc"] for r in _cell(records, t, m, x, kind, lv)]
                for x in PAI_METHODS for lv in levels}
        for method in _present(records, PAI_METHODS):
            cells = []
            for lv in levels:
                means = {x: statistics.fmean(accs[(x, lv)]) for x in PAI_METHODS if accs[(x, lv)]}
                best = method in means and means[method] == max(means.values())
                cell = mean_std(accs[(method, lv)])
                cells.append(f"**{cell}**" if best else cell)
            out.append(f"| {t} | {m} | {method} | {dense} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _present(records: list[Record], order: tuple[str, ...]) -> list[str]:
    """The methods of ``order`` that have records, in that order."""
    have = {r["method"] for r in records}
    return [x for x in order if x in have]


def _collapse_section(records: list[Record]) -> list[str]:
    """Irregular runs with an emptied layer / with no input->output path left, of all runs."""
    levels = sorted({r["level"] for r in records if r["kind"] == "irregular"}, reverse=True)
    if not levels:
        return []
    out = ["### Layer collapse: runs with an emptied layer (collapsed_layers > 0) / disconnected, of all runs",
           "", "| task | model | method | " + " | ".join(f"{100 * lv:g} %" for lv in levels) + " |",
           "|---|---|---|" + "---|" * len(levels)]
    for t, m in sorted({(r["task"], r["model"]) for r in records}):
        for method in _present(records, PAI_METHODS):
            cells = []
            for lv in levels:
                runs = _cell(records, t, m, method, "irregular", lv)
                cells.append(f"{sum((r['collapsed_layers'] or 0) > 0 for r in runs)} / "
                             f"{sum(bool(r.get('disconnected')) for r in runs)} of {len(runs)}")
            out.append(f"| {t} | {m} | {method} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _timing_section(records: list[Record]) -> list[str]:
    """Mean scoring seconds of the irregular runs, per model and criterion."""
    models = sorted({r["model"] for r in records if r["kind"] == "irregular"})
    if not models:
        return []
    methods = [x for x in _present(records, PAI_METHODS) if x not in ("px-shuffled", "px-filter-shuffled")]
    out = ["### Scoring wall time, mean seconds (irregular runs)", "",
           "| model | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for m in models:
        cells = []
        for method in methods:
            times = [r["score_s"] for r in records if r["model"] == m and r["method"] == method
                     and r["kind"] == "irregular" and "score_s" in r]
            cells.append(f"{statistics.fmean(times):.2f}" if times else "-")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return [*out, ""]


def pai_tables(records: list[Record]) -> str:
    """Irregular accuracy by density, structured accuracy by channel sparsity, collapse, scoring time;
    with tuning trials, the chosen learning rates; with PX runs, the paired comparisons."""
    for r in records:
        check(r, PAI_FIELDS)
    trials = [r for r in records if r.get("phase") == "tune"]
    records = [r for r in records if r.get("phase", "test") == "test"]
    out = [*pai_tuning_section(trials), *pai_paired_section(records), *pai_floor_section(records),
           *_accuracy_section(records, "irregular", "Irregular (global threshold), test accuracy %", "{:g} %"),
           *_accuracy_section(records, "structured", "Structured (channels removed), test accuracy %",
                              "{:g} % removed"),
           *_collapse_section(records), *_timing_section(records)]
    return "\n".join(out).rstrip() + "\n"


def structadmm_table(records: list[Record]) -> str:
    """Test accuracy by target conv compression and method, with the compression reached."""
    for r in records:
        check(r, STRUCTADMM_FIELDS)
    rows: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        rows[(r["task"], r["model"], r.get("target_compression", r["compression"]), r["method"])].append(r)
    order = {m: i for i, m in enumerate(ADMM_ORDER)}
    lines = ["| task | model | target conv compression | method | test acc % (n) | dense acc % | reached |",
             "|---|---|---|---|---|---|---|"]
    for key in sorted(rows, key=lambda k: (k[0], k[1], k[2], order.get(k[3], 9), k[3])):
        rs = rows[key]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]:g}x | {key[3]} | {mean_std([r['test_acc'] for r in rs])} "
                     f"({len(rs)}) | {mean_std([r['dense_acc'] for r in rs])} | "
                     f"{statistics.fmean(r['compression'] for r in rs):.1f}x |")
    return "\n".join(lines) + "\n"


def render(kind: str, records: list[Record], include_quick: bool = False) -> str:
    """Markdown for every protocol found in ``records``."""
    table = pai_tables if kind == "pai" else structadmm_table
    sections = []
    for protocol, group in sorted(by_protocol(records, include_quick).items()):
        sections.append(f"Protocol: `{protocol}` ({len(group)} records)\n\n{table(group)}")
    return "\n".join(sections) if sections else "(no records)\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("pai", "structadmm"))
    p.add_argument("--results", type=Path, help="the JSON-lines file (default docs/results/<kind>.jsonl)")
    p.add_argument("--out", type=Path, help="write the markdown here instead of printing it")
    p.add_argument("--include-quick", action="store_true", help="include --quick smoke records")
    args = p.parse_args(argv)
    path = args.results or DOCS / f"{args.kind}.jsonl"
    text = render(args.kind, load(path), args.include_quick)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
