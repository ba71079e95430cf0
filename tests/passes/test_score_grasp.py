"""score-grasp: a weight scores ``w * (H g)``, with ``g`` the loss gradient and ``H`` the loss Hessian over
``batches``, on logits divided by ``temperature`` (signed: high means removing it would shrink gradient
flow the most). Checked against the full Hessian of the tiny graph's two conv weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from graphprune.passes import run_pass
from passes import ScoreGrasp
from tests.passes.tiny_graph import hidden, member_sums, tiny_batches

pytestmark = pytest.mark.usefixtures("single_thread")


def test_weight_scores_are_the_weight_times_the_hessian_gradient_product(grouped) -> None:
    batches, temperature = tiny_batches(3), 5.0
    names = ["conv1.weight", "conv2.weight"]
    model = grouped.gm
    theta = [model.get_parameter(n).detach().double() for n in names]
    sizes = [t.numel() for t in theta]
    model64 = copy.deepcopy(model).double()  # the Hessian in float64: the pass works in float32

    def loss(flat: torch.Tensor) -> torch.Tensor:  # the summed loss of the two batches read
        params = {n: p.reshape(t.shape) for n, p, t in zip(names, flat.split(sizes), theta)}
        return sum(F.cross_entropy(functional_call(model64, params, (x.double(),)) / temperature, y)
                   for x, y in batches[:2])

    flat = torch.cat([t.flatten() for t in theta])
    g = torch.autograd.grad(loss(flat.requires_grad_()), flat)[0]
    hg = torch.autograd.functional.hessian(loss, flat.detach()) @ g
    want = dict(zip(names, (flat.detach() * hg).split(sizes)))
    state = run_pass(grouped.with_(data=batches), ScoreGrasp(batches=2, temperature=temperature))
    weights = state.weight_scores["grasp"]
    assert sorted(weights) == names and state.artifacts["score-grasp"]["temperature"] == temperature
    for name, t in zip(names, theta):
        got, expected = weights[name].double(), want[name].reshape(t.shape)
        assert float((got - expected).abs().max()) <= 1e-4 * float(expected.abs().max()), name
    assert float(want["conv1.weight"].abs().max()) > 0 and (want["conv1.weight"] < 0).any()  # signed
    group = hidden(grouped)
    np.testing.assert_allclose(state.scores["grasp"][group.index], member_sums(group, weights), rtol=1e-5, atol=1e-12)
