"""benchmarks/pai_ablation.py: each ranking at each criterion's per-layer densities has exactly those
densities, the global masks are the criteria's own, and the committed results regenerate docs/pai.md's
table."""

from __future__ import annotations

import pytest
import torch

from tests.test_benchmark_results import bench

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def ablation():
    module = bench("pai_ablation")
    cfg = module.Config(steps={"mnist5k": 1}, rounds=5, quick=True)
    run = module.Run("mnist5k", "plain_cnn", "ablation", "irregular", 0.02, 0)
    model, base, masks = module.ablation_masks(run, cfg)
    return module, masks


def _counts(mask: dict[str, torch.Tensor]) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in mask.items()}


def test_every_ranking_keeps_the_densities_it_is_given(ablation):
    module, masks = ablation
    assert set(masks) == set(module.METHODS)
    for densities in module.CRITERIA:
        for ranking in module.RANKINGS:
            assert _counts(masks[f"{ranking}@{densities}"]) == _counts(masks[densities]), (ranking, densities)
    assert _counts(masks["px"]) != _counts(masks["synflow"])  # the criteria chose different densities


def test_rankings_choose_different_weights_at_the_same_densities(ablation):
    _, masks = ablation
    for densities in ("px", "synflow"):
        a, b = masks[f"px@{densities}"], masks[f"synflow@{densities}"]
        assert any(not torch.equal(a[n], b[n]) for n in a), densities


def test_table_puts_densities_in_rows_and_rankings_in_columns():
    module = bench("pai_ablation")
    base = {"task": "mnist5k", "model": "plain_cnn", "level": 0.01, "phase": "test", "lr": 0.01,
            "collapsed_layers": 0}
    records = [{**base, "method": m, "seed": s, "test_acc": 10.0 * i + s}
               for i, m in enumerate(module.METHODS) for s in (0, 1)]
    lines = module.table(records).splitlines()
    assert lines[2].startswith("Global masks: px 0.5 ± 0.7 (n=2") and "synflow 10.5 ± 0.7" in lines[2]
    assert lines[4] == "| densities of \\ ranking | px | synflow | random |"
    row = lines[6]  # densities of px: px@px, synflow@px, random@px are METHODS[2:5]
    assert row.startswith("| px | 20.5 ± 0.7") and "| 30.5 ± 0.7" in row and "| 40.5 ± 0.7" in row


def test_committed_results_regenerate_the_docs_table():
    module = bench("pai_ablation")
    if not module.RESULTS.exists():
        pytest.skip("no committed ablation results")
    records = [r for r in module.load(module.RESULTS) if not r["protocol"].get("quick")]
    assert records and module.table(records) in module.DOC.read_text()
