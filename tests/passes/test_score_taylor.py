"""score-taylor: a weight scores the mean over ``batches`` of its squared first-order loss change
``(w * dL/dw) ** 2``, from the data the state carries; a channel's score sums its members' slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune.passes import run_pass
from passes import ScoreTaylor
from tests.passes.tiny_graph import hand_gradients, hidden, member_sums, tiny_batches

pytestmark = pytest.mark.usefixtures("single_thread")


def test_weight_scores_are_the_mean_squared_first_order_term(grouped) -> None:
    batches = tiny_batches(3)
    names = ["conv1.weight", "conv2.weight"]
    state = run_pass(grouped.with_(data=batches), ScoreTaylor(batches=2))
    grads = hand_gradients(grouped.gm, batches[:2], names)  # the third batch is not read
    weights = state.weight_scores["taylor"]
    assert sorted(weights) == names and state.artifacts["score-taylor"]["batches"] == 2
    for name in names:
        w = grouped.gm.get_parameter(name).detach().double()
        want = ((w * grads[0][name]) ** 2 + (w * grads[1][name]) ** 2) / 2
        torch.testing.assert_close(weights[name].double(), want, rtol=1e-4, atol=1e-12)
    group = hidden(grouped)
    np.testing.assert_allclose(state.scores["taylor"][group.index], member_sums(group, weights), rtol=1e-6)
    assert float(weights["conv1.weight"].sum()) > 0
