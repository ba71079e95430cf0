"""plot: the per-layer width PNG is written atomically from a report's layers (objects or dicts); a
missing matplotlib is one clear error naming the extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graphprune.plot import PlotError, plot_widths
from graphprune.report import LayerWidth

LAYERS = [LayerWidth("conv1", "Conv2d", 64, 32), LayerWidth("layer1.conv", "Conv2d", 128, 64),
          LayerWidth("fc", "Linear", 10, 10)]


def test_plot_writes_png_from_objects_and_dicts(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    a = plot_widths(LAYERS, tmp_path / "a.png", title="tiny")
    b = plot_widths([vars(layer) for layer in LAYERS], tmp_path / "b.png")
    for path in (a, b):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_errors_are_actionable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PlotError, match="no layers"):
        plot_widths([], tmp_path / "none.png")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(PlotError, match=r"graphprune\[plot\]"):
        plot_widths(LAYERS, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
