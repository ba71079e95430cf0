"""benchmarks/compile_speed.py's capture options: ``--capture`` reaches graphprune.compile (its report's capture is
recorded), and ``--also-capture`` adds that capture's time, its ratio to the main column and its MACs."""

from __future__ import annotations

import argparse
import sys

import pytest
import torch

from tests.test_benchmark_results import REPO, bench


@pytest.fixture(scope="module")
def speed():
    """The script imports ``_measure`` from its own folder, as a script run puts it first on sys.path."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        yield bench("compile_speed")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def _run(seconds: float, capture: str) -> dict:
    return {"status": "ok", "seconds": seconds, "macs_after": 2e9, "capture": capture, "peak_rss_mb": 1.0,
            "delta_rss_mb": 0.5}


def test_also_capture_columns_come_from_the_runs(speed) -> None:  # noqa: ANN001
    args = argparse.Namespace(repeats=1, input_size=64, capture="fx", also_capture="export", markdown=True)
    results = {"resnet18": {"dense": {"status": "ok", "macs": 4e9},
                            "tools": {"graphprune": _run(0.5, "fx"), "graphprune@export": _run(2.0, "export"),
                                      "torch-pruning": _run(1.0, "-")}}}
    table = speed.render_table(results, args)
    assert "| graphprune[export] s | time export/fx | MACs after gp[export] |" in table
    assert "| 2.00 (export) | 4.00x | 2.00 G |" in table
    assert "median compile time export/fx: 4.00x" in table and "graphprune capture fx" in table


def test_capture_reaches_compile_and_is_recorded(speed) -> None:  # noqa: ANN001
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3)).eval()
    for tool, capture, want in [("graphprune", "fx", "fx"), ("graphprune@export", "fx", "export"),
                                ("graphprune", "export", "export")]:
        prune = speed._load_tool(tool, capture=capture)
        prune(model, torch.randn(1, 3, 16, 16))
        assert speed.CAPTURE_RAN == [want]
