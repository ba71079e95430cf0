"""The PX-specific docs tables: the learning rates tuning chose, paired comparisons, the issue's floors.

Why paired: every criterion of a seed prunes the same initial network with the same pruning batch and
trains it in the same data order, so PX minus another criterion on one seed removes the seed's own
luck (a good or bad initialisation), and the win count says how often PX is ahead, not only by how
much on average.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from _results import Record

PAIRED_AGAINST = ("snip", "grasp", "synflow", "px-shuffled", "px-filter-shuffled")
FLOOR_BASELINES = ("snip", "grasp", "synflow")
FLOOR_DENSITIES = (0.01, 0.005)
COLLAPSE_DENSITY = 0.002


def _accuracy_by_seed(records: list[Record]) -> dict[tuple, dict[int, float]]:
    """(task, model, method, density) -> {seed: test accuracy} of the irregular runs."""
    out: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in records:
        if r["kind"] == "irregular":
            out[(r["task"], r["model"], r["method"], r["level"])][r["seed"]] = r["test_acc"]
    return out


def pai_tuning_section(trials: list[Record]) -> list[str]:
    """Validation accuracy of every tuning trial, the chosen learning rate in bold."""
    if not trials:
        return []
    lrs = sorted({r["lr"] for r in trials})
    out = ["### Learning rate, chosen on validation (one trial per rate and method, tuning seed, 1 % density)", "",
           "| task | model | method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
           "|---|---|---|" + "---|" * len(lrs)]
    cells: dict[tuple, dict[float, float]] = defaultdict(dict)
    for r in trials:
        cells[(r["task"], r["model"], r["method"])][r["lr"]] = r["val_acc"]
    for key in sorted(cells):
        best = max(cells[key].values())
        row = [f"**{cells[key][lr]:.1f}**" if cells[key].get(lr) == best else
               (f"{cells[key][lr]:.1f}" if lr in cells[key] else "-") for lr in lrs]
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(row) + " |")
    return [*out, ""]


def _paired(px: dict[int, float], other: dict[int, float]) -> str:
    seeds = sorted(set(px) & set(other))
    if not seeds:
        return "-"
    diffs = [px[s] - other[s] for s in seeds]
    return f"{statistics.fmean(diffs):+.1f} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def pai_paired_section(records: list[Record]) -> list[str]:
    """PX minus each criterion and control, same seed: mean difference in points (PX ahead on k of n seeds)."""
    acc = _accuracy_by_seed(records)
    levels = sorted({k[3] for k in acc if k[2] == "px"}, reverse=True)
    if not levels:
        return []
    out = ["### Paired: PX minus each method on the same seed, test accuracy points (PX ahead on k of n seeds)", "",
           "| task | model | against | " + " | ".join(f"{100 * lv:g} %" for lv in levels) + " |",
           "|---|---|---|" + "---|" * len(levels)]
    for t, m in sorted({(k[0], k[1]) for k in acc}):
        for other in PAIRED_AGAINST:
            if any((t, m, other, lv) in acc for lv in levels):
                row = [_paired(acc.get((t, m, "px", lv), {}), acc.get((t, m, other, lv), {})) for lv in levels]
                out.append(f"| {t} | {m} | {other} | " + " | ".join(row) + " |")
    return [*out, ""]


def pai_floor_section(records: list[Record]) -> list[str]:
    """Issue 14's PX floor read off the records: cells where PX's mean is at least every baseline's."""
    acc = _accuracy_by_seed(records)
    cells = sorted({(k[0], k[1]) for k in acc if k[2] == "px"})
    if not cells:
        return []
    out = ["### PX floor: (task, model) cells where PX's mean >= the mean of each of SNIP, GraSP, SynFlow", ""]
    for lv in FLOOR_DENSITIES:
        ok = []
        for t, m in cells:
            px = acc.get((t, m, "px", lv))
            others = [acc.get((t, m, b, lv)) for b in FLOOR_BASELINES]
            if px and all(others):
                ok.append(all(statistics.fmean(px.values()) >= statistics.fmean(o.values()) for o in others))
        out.append(f"- {100 * lv:g} %: {sum(ok)} of {len(ok)} cells with every method recorded")
    collapsed = [r for r in records
                 if r["method"] == "px" and r["kind"] == "irregular" and r["level"] == COLLAPSE_DENSITY]
    out.append(f"- {100 * COLLAPSE_DENSITY:g} %: PX runs with an emptied layer: "
               f"{sum((r['collapsed_layers'] or 0) > 0 for r in collapsed)} of {len(collapsed)}; disconnected: "
               f"{sum(bool(r.get('disconnected')) for r in collapsed)}")
    return [*out, ""]
