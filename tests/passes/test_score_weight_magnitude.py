"""score-weight-magnitude: every weight scores ``|w| ** p``, a masked weight scores 0, and a channel's
score sums its members' slices (with p=1, the L1 norm of its filter plus its consumer column)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune.passes import run_pass
from passes import ScoreWeightMagnitude
from tests.passes.tiny_graph import hidden, member_sums

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("p", [1, 2])
def test_weight_scores_are_the_magnitude_summed_per_channel(grouped, p: int) -> None:
    state = run_pass(grouped, ScoreWeightMagnitude(p=p))
    weights = state.weight_scores["magnitude"]
    assert sorted(weights) == ["conv1.weight", "conv2.weight"] and state.artifacts["score-weight-magnitude"]["p"] == p
    for name, score in weights.items():
        torch.testing.assert_close(score, grouped.gm.get_parameter(name).detach().double().abs() ** p)
    group = hidden(grouped)
    np.testing.assert_allclose(state.scores["magnitude"][group.index], member_sums(group, weights), rtol=1e-12)


def test_masked_weights_score_zero(grouped) -> None:
    mask = torch.ones(8, 3, 3, 3, dtype=torch.bool)
    mask[2] = False  # filter 2 masked out
    mask[5, 1] = False
    state = run_pass(grouped.with_(masks={"conv1.weight": mask}), ScoreWeightMagnitude())
    score, weight = state.weight_scores["magnitude"]["conv1.weight"], grouped.gm.conv1.weight.detach().double()
    assert not score[~mask].any()
    torch.testing.assert_close(score[mask], weight.abs()[mask])
    group = hidden(grouped)
    consumer = next(m for m in group.members if m.fqn == "conv2.weight")
    column = list(consumer.channel).index(2)  # where the shuffle puts channel 2 among conv2's inputs
    left = float(state.weight_scores["magnitude"]["conv2.weight"][:, column].sum())
    assert state.scores["magnitude"][group.index][2] == pytest.approx(left)  # only its consumer column is left
