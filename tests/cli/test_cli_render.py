"""``graphprune.cli_render``: the measure-latency artifact printed as a table, a row per batch size and
variant, with the fastest pruned speedup set against the MAC reduction."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from graphprune.cli import main
from graphprune.cli_render import print_latency

pytestmark = pytest.mark.usefixtures("single_thread")

RECORD = {"threads": 1, "baseline": "dense", "batches": {
    "1": {"dense": {"median_ms": 2.0, "min_ms": 1.9, "max_ms": 2.5, "repeats": 30, "speedup": 1.0,
                    "paired_speedup": 1.0},
          "pruned": {"median_ms": 1.25, "min_ms": 1.2, "max_ms": 1.4, "repeats": 30, "speedup": 1.6,
                     "paired_speedup": 1.55},
          "pruned+fused": {"median_ms": 1.0, "min_ms": 0.9, "max_ms": 1.1, "repeats": 30, "speedup": 2.0,
                           "paired_speedup": 2.1}},
    "32": {"dense": {"median_ms": 40.0, "min_ms": 39.0, "max_ms": 41.0, "repeats": 5, "speedup": 1.0,
                     "paired_speedup": 1.0},
           "pruned+fused": {"median_ms": 12.5, "min_ms": 12.0, "max_ms": 13.0, "repeats": 5, "speedup": 3.2,
                            "paired_speedup": 3.1}}}}


def _printed(record: dict, macs_before: int, macs_after: int) -> list[str]:
    buffer = io.StringIO()
    print_latency(Console(file=buffer, width=200), record, macs_before, macs_after)
    return buffer.getvalue().splitlines()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.replace("┃", "│").strip("│ ").split("│")]


def test_latency_is_a_table_row_per_batch_and_variant() -> None:
    lines = _printed(RECORD, 400, 100)
    assert lines[0].startswith("latency (CPU, 1 thread; speedup over dense")
    header = next(_cells(line) for line in lines if line.startswith("┃"))
    assert header == ["batch", "variant", "median ms", "min ms", "max ms", "speedup", "paired speedup"]
    rows = [_cells(line) for line in lines if line.startswith("│")]
    assert rows == [
        ["1", "dense", "2.000", "1.900", "2.500", "1.00x", "1.00x"],
        ["1", "pruned", "1.250", "1.200", "1.400", "1.60x", "1.55x"],
        ["1", "pruned+fused", "1.000", "0.900", "1.100", "2.00x", "2.10x"],
        ["32", "dense", "40.000", "39.000", "41.000", "1.00x", "1.00x"],
        ["32", "pruned+fused", "12.500", "12.000", "13.000", "3.20x", "3.10x"],
    ]
    # MACs 4x smaller: the fastest pruned variant reached 2.0 / 4 at batch 1 and 3.2 / 4 at batch 32
    assert lines[-1] == "MACs reduced 4.00x; fastest pruned speedup / MAC reduction: 0.50 at batch 1, 0.80 at batch 32"


def test_no_mac_ratio_without_macs() -> None:
    lines = _printed(RECORD, 0, 0)
    assert not any(line.startswith("MACs reduced") for line in lines)
    assert sum(line.startswith("│") for line in lines) == 5


def test_compile_latency_prints_the_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["compile", "zoo:resnet8", "--latency"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [_cells(line) for line in lines if line.startswith("│")]
    variants = {(row[0], row[1]) for row in rows if len(row) == 7}
    assert variants == {(b, v) for b in ("1", "32") for v in ("dense", "pruned", "pruned+fused")}
    assert any(line.startswith("MACs reduced") for line in lines)
