"""N:M and shape-wise (GEMM column) masks: brute-force checks of the selection, and plans that use them
end to end (masks installed, the function equals the masked dense model, dead channels removed)."""

from __future__ import annotations

import itertools

import pytest
import torch

import graphprune
import models_zoo
from graphprune.errors import PlanError
from graphprune.scoring.structured_masks import nm_masks, shape_masks

pytestmark = pytest.mark.usefixtures("single_thread")


def test_two_of_four_keeps_the_best_two_of_every_block() -> None:
    scores = {"conv.weight": torch.rand(6, 8, 3, 3), "odd.weight": torch.rand(4, 6, 1, 1)}
    masks, dense = nm_masks(scores, 2, 4)
    assert dense == ["odd.weight"]  # 6 input channels are not a multiple of 4
    s, m = scores["conv.weight"], masks["conv.weight"]
    for o, kh, kw, block in itertools.product(range(6), range(3), range(3), range(2)):
        chans = list(range(4 * block, 4 * block + 4))
        best = sorted(chans, key=lambda c: -float(s[o, c, kh, kw]))[:2]
        assert {c for c in chans if m[o, c, kh, kw]} == set(best)


def test_shape_masks_keep_whole_columns_by_summed_score() -> None:
    s = torch.rand(5, 4, 3, 3)
    m = shape_masks({"w": s}, 0.25)["w"]
    assert (m == m[0:1]).all()  # the same columns in every filter
    column = s.sum(0).flatten()
    kept = m[0].flatten()
    assert int(kept.sum()) == 9  # 25 % of 36 columns
    assert column[kept].min() >= column[~kept].max()


def test_two_of_four_plan_installs_half_dense_masks() -> None:
    model, inputs = models_zoo.load("zoo:small_cnn")
    model.eval()
    plan = {"prune": [{"select": "*", "structure": "2:4", "sparsity": 0.5, "score": "magnitude"}]}
    result = graphprune.compile(model, inputs, plan=plan)
    record = result.report.artifacts["apply-masks"]
    assert record["structure"] == "2:4"
    for fqn, density in record["layers"].items():
        assert density == pytest.approx(0.5), fqn
    for name, module in result.module.named_modules():
        if hasattr(module, "weight_mask"):
            rows = module.weight_mask.movedim(1, -1).reshape(-1, 4)
            assert (rows.sum(-1) == 2).all(), name


def test_shape_plan_masks_columns_and_turns_dead_channels_into_removed_ones() -> None:
    model, inputs = models_zoo.load("zoo:small_cnn")
    model.eval()
    rule = {"select": "*", "structure": "shape", "sparsity": 0.9, "score": "magnitude"}
    result = graphprune.compile(model, inputs, plan={"prune": [rule]})
    assert any(t["pass"] == "remove-unused-paths" for t in result.report.schedule)
    masks_only = graphprune.compile(model, inputs, plan={"prune": [rule], "pipeline": [
        "trace", "canonicalize", "analyze-channels", "score-weight-magnitude", "apply-masks"]})
    assert masks_only.report.params_after == sum(p.numel() for p in model.parameters())
    assert result.report.params_after < masks_only.report.params_after  # dead input channels were removed
    x = torch.randn(4, *inputs[0].shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(result.module(x), masks_only.module(x), rtol=1e-5, atol=1e-5)


def test_nm_rule_needs_the_matching_sparsity() -> None:
    with pytest.raises(PlanError, match=r"prune\[0\]\.sparsity: structure '2:4' keeps 2 of every 4 weights: "
                                        r"sparsity must be 0.5, got 0.3"):
        graphprune.compile(torch.nn.Conv2d(4, 4, 1), torch.randn(1, 4, 2, 2),
                           plan={"prune": [{"structure": "2:4", "sparsity": 0.3}]})
