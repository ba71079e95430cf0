"""Per-layer width plot: one pair of bars per layer (output channels before and after pruning), in
network order, to a PNG. Shows at a glance where the allocator cut and where channels stayed frozen.

matplotlib is an optional dependency (``pip install 'graphprune[plot]'``), imported only here, only
when a plot is asked for; the figure is drawn on an Agg canvas (no global backend change) and
written atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from graphprune.errors import PlotError
from graphprune.io import atomic_write


def _widths(layers: Iterable[Any]) -> list[tuple[str, int, int]]:
    """(name, before, after) from LayerWidth objects or their dicts (``report.to_dict()['layers']``)."""
    rows = []
    for layer in layers:
        get = layer.get if isinstance(layer, Mapping) else lambda k, layer=layer: getattr(layer, k)
        rows.append((str(get("name")), int(get("before")), int(get("after"))))
    return rows


def _figure(rows: list[tuple[str, int, int]], title: str | None) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotError("plotting layer widths needs matplotlib: pip install 'graphprune[plot]' "
                        "(or pip install matplotlib)") from exc
    n = len(rows)
    fig = Figure(figsize=(min(max(6.0, 0.16 * n + 2.0), 40.0), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    index = range(n)
    ax.bar(index, [r[1] for r in rows], width=0.8, color="#c6d4e1", label="before")
    ax.bar(index, [r[2] for r in rows], width=0.5, color="#1f4e79", label="after")
    step = max(1, n // 120)  # at most ~120 tick labels
    ax.set_xticks(list(index)[::step], [r[0] for r in rows][::step], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("output channels")
    ax.legend(loc="upper left", fontsize=8)
    kept = sum(r[2] for r in rows) / max(sum(r[1] for r in rows), 1)
    ax.set_title(f"{title + ': ' if title else ''}per-layer width ({kept:.0%} of channels kept)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_widths(layers: Iterable[Any], path: str | Path, *, title: str | None = None) -> Path:
    """Draw before/after bars for every layer to ``path`` (PNG) and return the path."""
    rows = _widths(layers)
    if not rows:
        raise PlotError("no layers to plot (the report lists no layer with a weight)")
    fig = _figure(rows, title)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return path
