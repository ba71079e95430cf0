"""Model-coverage sweeps: graphprune.compile at sparsity 0.5 over every torchvision classifier and
one model per timm family (the lists and the measurement are those of benchmarks/coverage_sweep.py).

Slow (tens of minutes on 2 cores): runs only with GRAPHPRUNE_SWEEP=full, e.g.

    GRAPHPRUNE_SWEEP=full python -m pytest tests/test_coverage.py -n 2 -q

Inputs: min(default, 64) for torchvision (the model's default size where building or running at
64 fails: inception_v3, maxvit_t, vit_h_14), which keeps the 80 compiles to ~10 minutes on 2 cores.
timm uses the sweep's own setting, min(default, 224): there process start-up dominates (compile is
< 5 s per family at 224), and smaller inputs change some families' MACs ratio (samvit_base_patch16
measured 1.47x at 224 but 1.27x at 128).

EXCEPTIONS lists torchvision models measured below the 2.5x MACs bar at the test's input size
(docs/coverage.md); they must still compile and keep their output shape.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FULL = os.environ.get("GRAPHPRUNE_SWEEP") == "full"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FULL, reason="whole-model coverage sweep: set GRAPHPRUNE_SWEEP=full to run"),
]

TORCHVISION_MACS_MIN = 2.5
TORCHVISION_MAX_SIZE = 64
TIMM_MAX_SIZE = 224
TIMM_OK_FRACTION = 0.95  # compiled + same output shape
TIMM_MACS_MIN = 1.5
TIMM_MACS_FRACTION = 0.90  # MACs reduction >= TIMM_MACS_MIN
TIMM_TIMEOUT_S = 300.0

# torchvision models measured below TORCHVISION_MACS_MIN at the test's input size (sparsity 0.5;
# benchmarks/coverage_sweep.py --max-input-size 64 at commit 5173abd, see docs/coverage.md):
# name -> measured cause.
EXCEPTIONS: dict[str, str] = {
    "shufflenet_v2_x0_5": ("MACs reduction 2.42x at 64x64 (2.58x at 224x224); no unknown ops; frozen "
                           "only 'convolution input channels are not tracked' (1 node) and "
                           "'reaches the model output'"),
}


def _sweep_module():
    name = "_graphprune_coverage_sweep"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "coverage_sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _torchvision_names() -> list[str]:
    if not FULL:  # keep collection cheap when the sweep is skipped anyway
        return ["<torchvision models>"]
    tv = pytest.importorskip("torchvision")
    return list(tv.models.list_models(module=tv.models))


def _describe(res: dict) -> str:
    return (f"{res.get('model')}: status={res.get('status')} stage={res.get('stage')} "
            f"error={res.get('error')} where={res.get('where')} input={res.get('input_shape')} "
            f"shape {res.get('dense_shape')} -> {res.get('out_shape')} "
            f"macs x{res.get('macs_reduction')} unknown ops={res.get('unknown_ops')}")


def test_exceptions_are_torchvision_models():
    names = set(_torchvision_names())
    stale = sorted(set(EXCEPTIONS) - names)
    assert not stale, f"EXCEPTIONS names that are not torchvision classification models: {stale}"


@pytest.mark.parametrize("name", _torchvision_names())
def test_torchvision_model(name):
    res = _sweep_module().measure_one("torchvision", name, None, max_input_size=TORCHVISION_MAX_SIZE)
    assert res["status"] == "ok", _describe(res)
    assert res["shape_ok"], _describe(res)
    if name not in EXCEPTIONS:
        assert res["macs_reduction"] >= TORCHVISION_MACS_MIN, _describe(res)


def test_timm_families(tmp_path):
    pytest.importorskip("timm")
    sweep = _sweep_module()
    work = sweep.build_worklist("timm", None)
    rows = sweep.sweep("timm", work, tmp_path / "timm.jsonl", jobs=2, timeout=TIMM_TIMEOUT_S,
                       input_size=None, resume=False, max_input_size=TIMM_MAX_SIZE, quiet=True)
    assert len(rows) == len(work)
    summary = sweep.summary(rows, "timm")
    n = summary["total"]
    ok = [r for r in rows if r.get("status") == "ok" and r.get("shape_ok")]
    good = [r for r in ok if r.get("macs_reduction", 0) >= TIMM_MACS_MIN]
    failed = "\n".join(_describe(r) for r in rows if r not in ok)
    low = "\n".join(_describe(r) for r in ok if r not in good)
    assert len(ok) >= TIMM_OK_FRACTION * n, (
        f"{len(ok)}/{n} timm families compiled with the same output shape "
        f"(need {TIMM_OK_FRACTION:.0%}); failures:\n{failed}")
    assert len(good) >= TIMM_MACS_FRACTION * n, (
        f"{len(good)}/{n} timm families reached MACs >= {TIMM_MACS_MIN}x (need {TIMM_MACS_FRACTION:.0%}); "
        f"below:\n{low}\nfailed:\n{failed}")
