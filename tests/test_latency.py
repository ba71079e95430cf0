"""latency: round-robin timing with fixed threads returns a JSON-able record whose speedups are the
baseline median over each variant's; thread count is restored; inputs batch along dim 0."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from graphprune.latency import batched, latency_record, sample_variants, time_variants


def _mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, 256)).eval()


def test_latency_record_is_json_and_consistent() -> None:
    before = torch.get_num_threads()
    variants = {"dense": _mlp(2048).train(), "pruned": _mlp(64)}
    record = latency_record(variants, (torch.randn(1, 256),), batches=(1, 8), repeats={1: 15, 8: 5},
                            warmup=1, num_threads=1)
    assert torch.get_num_threads() == before
    assert variants["dense"].training and variants["dense"][0].training, "mode not restored"
    json.dumps(record)
    assert record["threads"] == 1 and set(record["batches"]) == {"1", "8"}
    for per_batch in record["batches"].values():
        dense, pruned = per_batch["dense"], per_batch["pruned"]
        assert dense["speedup"] == 1.0 and dense["paired_speedup"] == 1.0
        assert pruned["paired_speedup"] > 0
        assert pruned["speedup"] == pytest.approx(dense["median_ms"] / pruned["median_ms"], rel=1e-2)
        assert 0 < pruned["min_ms"] <= pruned["median_ms"] <= pruned["max_ms"]
    assert record["batches"]["8"]["dense"]["repeats"] == 5
    # 32x fewer MACs: even on a loaded runner the small variant is measurably faster at batch 8
    assert record["batches"]["8"]["pruned"]["speedup"] > 2


def test_batched_repeats_batch_one_inputs() -> None:
    x = torch.randn(1, 3, 4, 4)
    (b,) = batched((x,), 5)
    assert b.shape == (5, 3, 4, 4) and torch.equal(b[4], x[0]) and b.is_contiguous()
    with pytest.raises(ValueError, match="batch size 1"):
        batched((torch.randn(2, 3),), 4)


class Counting(nn.Module):
    """Identity that appends to ``calls`` on every forward."""

    def __init__(self, calls: list[int]) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(1)
        return x


def test_time_variants_counts_calls() -> None:
    calls: list[int] = []

    timings = time_variants({"a": Counting(calls)}, (torch.zeros(1),), repeats=4, warmup=2)
    assert len(calls) == 6 and timings["a"].repeats == 4


def test_a_warm_block_times_all_but_the_first_call_of_each_round() -> None:
    calls: list[int] = []

    samples = sample_variants({"a": Counting(calls), "b": Counting(calls)}, (torch.zeros(1),), repeats=4, warmup=1,
                              block=3)
    assert len(calls) == 2 * (1 + 4 * 3) and [len(s) for s in samples.values()] == [4, 4]
    record = latency_record({"dense": Counting(calls)}, (torch.zeros(1, 2),), batches=(1,), repeats=2, warmup=1)
    assert record["block"] == "auto" and record["batches"]["1"]["dense"]["repeats"] == 2


def test_committed_latency_records_regenerate_the_floor_table() -> None:
    from tests.test_benchmark_results import bench

    floors = bench("_latency_floors")
    records = [r for r in floors._results.load(floors.RESULTS)]
    assert {r["model"] for r in records} >= {"resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121",
                                             "regnet_y_800mf", "convnext_tiny", "vit_b_16"}
    assert floors.table(records) in floors.DOC.read_text()


def test_the_floor_table_judges_the_median_run() -> None:
    from tests.test_benchmark_results import bench

    floors = bench("_latency_floors")

    def record(dense_ms: float, ours_ms: float, tp_ms: float) -> dict:
        cell = {"dense": {"median_ms": dense_ms, "speedup": 1.0}, "gp+layout": {"median_ms": ours_ms,
                "speedup": dense_ms / ours_ms}, "tp": {"median_ms": tp_ms}, "tp+layout": {"median_ms": tp_ms}}
        return {"model": "m", "macs_reduction_gp": 4.0, "latency": {"block": "auto", "batches": {"1": cell}}}

    met = floors.table([record(100, 25, 26), record(100, 30, 31), record(100, 24, 24)])  # ratios 1.0, 0.83, 1.04
    assert "| m | 1 | 3 | 4.00x |" in met and "1.00 (0.83–1.04)" in met and met.rstrip().endswith("| yes |")
    slow = floors.table([record(100, 25, 24), record(100, 25, 24)])  # TP faster in both runs
    assert slow.rstrip().endswith("| **no** |")
    assert "| m |" not in floors.table([{**record(100, 25, 26), "latency": {"batches": {}}}])  # no block: left out
