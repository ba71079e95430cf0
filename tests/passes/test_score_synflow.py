"""score-synflow: data-free path scores ``|w| * dR/d|w|`` with ``R`` the output sum of the all-ones input
through the network of absolute weights (biases zero), re-scored over ``rounds`` on the model masked to
each round's density (``1 - sparsity`` unless given). On a one-hidden-layer MLP both have closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune.passes import run_pass
from passes import ScoreSynflow
from tests.passes.tiny_graph import hidden, member_sums, mlp_state

pytestmark = pytest.mark.usefixtures("single_thread")


def _closed_form(a1: torch.Tensor, a2: torch.Tensor) -> dict[str, torch.Tensor]:
    """R = 1' A2 A1 1: dR/dA1[h, i] = sum_k A2[k, h] and dR/dA2[k, h] = sum_i A1[h, i]."""
    return {"0.weight": a1 * a2.sum(0)[:, None], "2.weight": a2 * a1.sum(1)[None, :]}


def test_one_round_is_the_closed_form_and_a_channel_sums_its_members() -> None:
    state = mlp_state(sparsity=0.75)
    a1, a2 = (state.gm.get_parameter(n).detach().double().abs() for n in ("0.weight", "2.weight"))
    out = run_pass(state, ScoreSynflow(rounds=1))
    want = _closed_form(a1, a2)
    for name, score in out.weight_scores["synflow"].items():
        torch.testing.assert_close(score.double(), want[name], rtol=1e-5, atol=0)
    group = hidden(state)
    np.testing.assert_allclose(out.scores["synflow"][group.index], member_sums(group, want), rtol=1e-5)
    assert out.artifacts["score-synflow"]["density"] == pytest.approx(0.25)  # 1 - sparsity


def test_later_rounds_score_the_model_masked_by_the_earlier_ones() -> None:
    state = mlp_state()
    a1, a2 = (state.gm.get_parameter(n).detach().double().abs() for n in ("0.weight", "2.weight"))
    first = _closed_form(a1, a2)  # rounds=2 at density 0.25: round one keeps the best half (21 of 42)
    flat = torch.cat([first["0.weight"].flatten(), first["2.weight"].flatten()])
    keep = flat >= flat.sort(descending=True).values[20]
    m1, m2 = keep[:24].reshape(6, 4), keep[24:].reshape(3, 6)
    want = _closed_form(a1 * m1, a2 * m2)
    out = run_pass(state, ScoreSynflow(rounds=2, density=0.25))
    got = out.weight_scores["synflow"]
    torch.testing.assert_close(got["0.weight"].double(), want["0.weight"], rtol=1e-5, atol=0)
    torch.testing.assert_close(got["2.weight"].double(), want["2.weight"], rtol=1e-5, atol=0)
    assert not got["0.weight"][~m1].any() and out.artifacts["score-synflow"]["rounds"] == 2
