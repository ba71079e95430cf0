"""score-bn-scale (network slimming): a filter scores ``|gamma|`` of the BatchNorm right after its conv,
broadcast over the filter; a conv without one falls back to the mean ``|w|`` of each filter. A channel
takes its producing filter's score once: neither summed over the filter nor added from consumer columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune.passes import run_pass
from passes import ScoreBnScale
from tests.passes.tiny_graph import hidden

pytestmark = pytest.mark.usefixtures("single_thread")


def test_filters_score_their_batchnorms_gamma_and_channels_take_it_once(grouped) -> None:
    with torch.no_grad():
        grouped.gm.bn.weight[3] = -2.0  # |gamma|: a negative scale counts by its size
    state = run_pass(grouped, ScoreBnScale())
    weights = state.weight_scores["bn-scale"]
    gamma = grouped.gm.bn.weight.detach().double().abs()
    torch.testing.assert_close(weights["conv1.weight"], gamma[:, None, None, None].expand(8, 3, 3, 3))
    conv2 = grouped.gm.conv2.weight.detach().double()  # no BatchNorm after it: the mean |w| per filter
    torch.testing.assert_close(weights["conv2.weight"], conv2.abs().mean((1, 2, 3))[:, None, None, None]
                               .expand_as(conv2))
    group = hidden(grouped)
    np.testing.assert_allclose(state.scores["bn-scale"][group.index], gamma.numpy(), rtol=1e-12)
    assert int(np.argmax(state.scores["bn-scale"][group.index])) == 3
