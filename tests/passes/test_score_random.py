"""score-random: i.i.d. uniform weight scores from a seeded generator (the baseline every criterion must
beat): the same seed gives the same scores, another seed others, and a channel's score sums its members'
slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune.passes import run_pass
from passes import ScoreRandom
from tests.passes.tiny_graph import hidden, member_sums

pytestmark = pytest.mark.usefixtures("single_thread")


def test_seeded_uniform_weight_scores_summed_per_channel(grouped) -> None:
    state = run_pass(grouped, ScoreRandom(seed=3))
    weights = state.weight_scores["random"]
    assert {"scores:random", "weight-scores:random"} <= state.facts and sorted(weights) == ["conv1.weight",
                                                                                            "conv2.weight"]
    g = torch.Generator().manual_seed(3)
    for name in sorted(weights):  # one draw per scored weight, in name order
        assert torch.equal(weights[name], torch.rand(grouped.gm.get_parameter(name).shape, generator=g,
                                                     dtype=torch.float64)), name
    again, other = run_pass(grouped, ScoreRandom(seed=3)), run_pass(grouped, ScoreRandom(seed=4))
    assert all(torch.equal(again.weight_scores["random"][n], s) for n, s in weights.items())
    assert not any(torch.equal(other.weight_scores["random"][n], s) for n, s in weights.items())
    group = hidden(grouped)
    np.testing.assert_allclose(state.scores["random"][group.index], member_sums(group, weights), rtol=1e-12)
    assert state.artifacts["score-random"]["seed"] == 3
