"""``graphprune.admm.prune``: the one-call API runs the user's optimizer and evaluation hooks as often as
the schedule says and returns a smaller model."""

from __future__ import annotations

import pytest
import torch

import models_zoo
from graphprune.training import accuracy_eval

pytestmark = pytest.mark.usefixtures("single_thread")


def test_prune_runs_the_users_hooks_and_returns_a_smaller_model():
    from graphprune.admm import prune

    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    calls = {"optimizer": 0, "eval": 0}

    def optimizer(params):
        calls["optimizer"] += 1
        return torch.optim.Adam(params, lr=1e-3)

    def evaluate(module):
        calls["eval"] += 1
        return accuracy_eval(data)(module)

    result = prune(model, (data[0][0][:1],), data, sparsity=0.5, optimizer=optimizer, eval_fn=evaluate,
                   iterations=2, retrain_epochs=1, progress=False)
    assert calls["optimizer"] == 2  # one fresh optimizer for the ADMM phase, one for retraining
    assert calls["eval"] == 2 + 2 + 1 + 1  # per update, around the hard prune, per retrain epoch, at the end
    assert result.report.params_after < 0.35 * result.report.params_before
    assert result.report.artifacts["admm"]["steps"] == 2 * 2 + 2
