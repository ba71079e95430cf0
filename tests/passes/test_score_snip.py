"""score-snip: a weight scores ``|w * dL/dw|`` with the gradient summed over ``batches`` (the loss's
sensitivity to the weight's mask), from the data the state carries; a channel's score sums its members'
slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune.passes import run_pass
from passes import ScoreSnip
from tests.passes.tiny_graph import hand_gradients, hidden, member_sums, tiny_batches

pytestmark = pytest.mark.usefixtures("single_thread")


def test_weight_scores_are_the_connection_sensitivity(grouped) -> None:
    batches = tiny_batches(3)
    names = ["conv1.weight", "conv2.weight"]
    state = run_pass(grouped.with_(data=batches), ScoreSnip(batches=2))
    grads = hand_gradients(grouped.gm, batches[:2], names)  # the third batch is not read
    weights = state.weight_scores["snip"]
    assert sorted(weights) == names and state.artifacts["score-snip"]["batches"] == 2
    for name in names:
        w = grouped.gm.get_parameter(name).detach().double()
        torch.testing.assert_close(weights[name].double(), (w * (grads[0][name] + grads[1][name])).abs(),
                                   rtol=1e-4, atol=1e-9)
    group = hidden(grouped)
    np.testing.assert_allclose(state.scores["snip"][group.index], member_sums(group, weights), rtol=1e-6)
    assert float(weights["conv1.weight"].sum()) > 0
