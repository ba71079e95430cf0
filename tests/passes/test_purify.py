"""purify: weak filters/columns (mostly pruned, small remaining norm) are zeroed, recorded, and then
removed as dead channels; default off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphprune.passes import run_pipeline
from graphprune.testing import masked_equivalence_error
from passes import Purify
from passes.purify import weak_slices
from passes.unused_paths import purify_to_fixed_point
from tests.helpers import calibrate
from tests.passes.test_unused_paths import Chain, analysed, removed

pytestmark = pytest.mark.usefixtures("single_thread")


def sparse_chain() -> tuple[nn.Module, tuple]:
    """Filter 1 of conv1 and input column 4 of conv2 are 90 % zero with a tiny remainder; filter 6 of
    conv1 is as sparse but large; column 2 of conv2 is small but dense."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = Chain().eval()
    with torch.no_grad():
        for w, index in ((model.body[0].weight, 1), (model.body[0].weight, 6)):
            w[index] = 0
            w[index, 0, 0, 0] = 1e-3 if index == 1 else 5.0
        col = model.body[3].weight
        col[:, 4] = 0
        col[0, 4, 1, 1] = 1e-3
        col[:, 2] = 1e-4
    return calibrate(model, (x,)), (x,)  # BN(0) != 0: purifying a filter must zero its norm too


def test_weak_slices_thresholds():
    w = torch.tensor([[0.0, 0.0, 0.0, 0.1], [0.0, 0.0, 0.0, 9.0], [0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
    assert weak_slices(w, None, 0, eta=0.7, sigma=0.5).tolist() == [True, False, False, False]
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[2, :3] = False  # masked weights count as pruned and do not count in the norm
    assert weak_slices(w, mask, 0, eta=0.7, sigma=0.5).tolist() == [True, False, True, False]


def test_default_is_off():
    model, x = sparse_chain()
    state = analysed(model, x)
    weights = dict(state.gm.named_parameters())
    after = run_pipeline(state, [Purify()])
    assert "purify" not in after.artifacts
    assert all(v is weights[k] for k, v in after.gm.named_parameters())


def test_purify_then_unused_paths_removes_exactly_the_weak_slices():
    model, x = sparse_chain()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = run_pipeline(analysed(model, x), [Purify(eta=0.8, sigma=0.01)])
    record = state.artifacts["purify"]
    assert record["filters"] == {"body.0.weight": [1]} and record["columns"] == {"body.3.weight": [4]}
    assert record["num_filters"] == 1 and record["num_columns"] == 1
    state = purify_to_fixed_point(state)
    assert removed(state, "body.0.weight") == {1, 4} and removed(state, "body.3.weight", 1) == {1, 4}
    assert removed(state, "body.3.weight") == set()
    # the result is the dense model with the purified channels zeroed: exact up to that loss
    assert masked_equivalence_error(model, state.gm, state.kept, x) <= 1e-5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_purify_updates_masks_and_records_original_indices():
    model, x = sparse_chain()
    mask = torch.ones_like(model.body[3].weight, dtype=torch.bool)
    mask[:, 7] = False
    mask[:7, 2] = False  # column 2: 7 of 8 filters masked, the survivor is tiny
    state = purify_to_fixed_point(analysed(model, x, {"body.3.weight": mask}))  # removes channel 7
    assert removed(state, "body.0.weight") == {7}
    state = run_pipeline(state, [Purify(eta=0.8, sigma=0.01)])
    assert state.artifacts["purify"]["columns"] == {"body.3.weight": [2, 4]}  # dense numbering
    new_mask = state.masks["body.3.weight"]
    assert new_mask.shape == state.gm.get_submodule("body.3").weight.shape and not new_mask[:, [2, 4]].any()
    state = purify_to_fixed_point(state)
    assert removed(state, "body.0.weight") == {1, 2, 4, 7}
