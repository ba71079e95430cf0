"""benchmarks/admm.py's protocol: every method and ablation is registered, AGP's cubic schedule reaches the
target, the ablations change only their one setting, and every record carries the required fields plus
``pre_prm_compression``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def bench():
    if "_graphprune_bench_admm" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_graphprune_bench_admm", REPO / "benchmarks" / "admm.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["_graphprune_bench_admm"] = module
        spec.loader.exec_module(module)
    return sys.modules["_graphprune_bench_admm"]


def test_methods_baselines_and_ablations_are_registered():
    methods = bench() and sys.modules["_admm_methods"]
    assert set(methods.METHODS) == {"admm", "admm-zfixed", "admm-rhofixed", "admm-noprog", "admm-nopurify",
                                    "magnitude", "agp", "tp"}
    assert methods.ABLATIONS["admm-zfixed"] == {"update_z": False}
    assert methods.ABLATIONS["admm-rhofixed"] == {"rho_growth": 1.0}


def test_agp_schedule_is_cubic_and_ends_at_the_target():
    methods = bench() and sys.modules["_admm_methods"]
    values = [methods.agp_sparsity(0.8, e, 4) for e in range(6)]
    assert values[:4] == pytest.approx([0.8 * (1 - 0.75 ** 3), 0.8 * (1 - 0.5 ** 3), 0.8 * (1 - 0.25 ** 3), 0.8])
    assert values[4:] == [0.8, 0.8] and all(b > a for a, b in zip(values, values[1:4]))


def test_records_carry_the_required_fields_and_pre_prm_compression():
    b = bench()
    base = {"task": "mnist5k", "model": "resnet20", "seed": 0, "budget": {}, "ratio": 10, "tune": True}
    results = [{**base, "method": "dense", "ratio": 1, "acc": 98.0, "conv_ratio": 1.0},
               {**base, "method": "admm", "acc": 97.0, "conv_ratio": 12.0, "pre_prm_compression": 10.0},
               {**base, "method": "magnitude", "acc": 96.0, "conv_ratio": 10.0}]
    records = b.structadmm_records(results, quick=False, validation=False)
    admm, magnitude = records[1], records[2]
    assert admm["pre_prm_compression"] == 10.0 and admm["compression"] == 12.0 and admm["dense_acc"] == 98.0
    assert magnitude["pre_prm_compression"] == magnitude["compression"] == 10.0  # no P-RM step
    assert all(r["protocol"]["tune"] for r in records)
