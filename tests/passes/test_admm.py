"""admm: StructADMM training as a pass. On resnet20 it hands remove-channels a keep decision whose removal
reproduces the trained model, leaves the user's model untouched, takes per-group targets from the plan's
rules, says when it has no data, and its fields are ``AdmmConfig``'s (the loop itself: tests/admm/)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import models_zoo
from graphprune.admm import AdmmConfig
from graphprune.errors import InputError
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from graphprune.testing import relative_error
from passes import Admm, AnalyzeChannels, Canonicalize, RemoveChannels, Trace

pytestmark = pytest.mark.usefixtures("single_thread")


def analysed(model: nn.Module, inputs: tuple, **options) -> CompileState:
    return run_pipeline(CompileState("m", model, inputs, Options(**options)),
                        [Trace(), Canonicalize(), AnalyzeChannels()])


def test_admm_pass_on_resnet20_feeds_remove_channels():
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(3)]
    state = analysed(model, (data[0][0][:1],), sparsity=0.5).with_(data=data)
    state = run_pipeline(state, [Admm(iterations=2, retrain_epochs=1, progress=False, lr=0.01)])
    assert {"weights-trained", "keep", "masks"} <= state.facts
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the user's model is untouched
    trained = copy.deepcopy(state.gm).eval()
    pruned = run_pipeline(state, [RemoveChannels()]).gm.eval()
    x = torch.randn(4, 3, 8, 8, generator=g)
    with torch.no_grad():
        assert relative_error(pruned(x), trained(x)) < 1e-5
    assert sum(p.numel() for p in pruned.parameters()) < 0.35 * sum(p.numel() for p in model.parameters())
    assert state.artifacts["admm"]["steps"] == 2 * 3 + 3


def test_admm_pass_without_data_says_so():
    model, inputs = models_zoo.load("zoo:resnet20", input_size=8)
    with pytest.raises(InputError, match="no training data"):
        Admm().run(analysed(model, inputs))


def test_admm_pass_takes_per_group_targets_from_the_plan_rules():
    from graphprune.plan import load_plan

    plan = load_plan({"prune": [{"select": "*", "sparsity": 0.25}, {"select": "layers.8.*", "sparsity": 0.75}]})
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    state = analysed(model, (data[0][0][:1],)).with_(plan=plan, data=data)
    state = run_pipeline(state, [Admm(iterations=1, retrain_epochs=0, progress=False)])
    kept = {g.describe().split(",")[0]: int(state.keep[g.labels].sum()) for g in state.channels.groups}
    assert kept["layers.8.conv1.0.weight"] == 16  # 75 % of 64 removed by the more specific rule
    assert kept["layers.7.conv1.0.weight"] == 48 and kept["layers.0.conv1.0.weight"] == 12  # 25 % elsewhere
    assert state.artifacts["admm"]["targets"] == [0.75]


def test_admm_pass_fields_mirror_the_config():
    from dataclasses import fields

    hooks = {"loss_fn", "optimizer", "scheduler", "eval_fn", "on_step", "batch_size"}
    assert {f.name for f in fields(Admm)} - hooks == {f.name for f in fields(AdmmConfig)}
