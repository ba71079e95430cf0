"""The paper's per-layer sets: each layer's filter-wise, channel-wise and shape-wise projection is the
brute-force nearest point, coupled layers are projected independently (unlike ``group``), per-layer
targets follow the plan's rules, and what ADMM zeroes per layer becomes physically removed channels
(through the admm pass's keep and the unused-path fixed point) with the pruned model equal to the
hard-pruned one; zeros no removal reaches are counted."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import models_zoo
from graphprune.admm import AdmmConfig, build_constraint
from graphprune.admm.constraints import LayerConstraint
from graphprune.conv_census import conv_census
from graphprune.errors import InputError
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from graphprune.testing import relative_error
from passes import Admm, AnalyzeChannels, Canonicalize, RemoveChannels, Trace
from passes.unused_paths import purify_to_fixed_point

pytestmark = pytest.mark.usefixtures("single_thread")


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def analysed(model: nn.Module, inputs: tuple, plan=None, **options) -> CompileState:
    state = CompileState("m", model, inputs, Options(**options))
    return run_pipeline(state.with_(plan=plan) if plan else state, [Trace(), Canonicalize(), AnalyzeChannels()])


def batches(shape, n: int = 3, seed: int = 0, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, *shape, generator=g), torch.randint(0, classes, (8,), generator=g)) for _ in range(n)]


def constraint(structure: str, state: CompileState, gm=None):
    cg = state.channels
    return build_constraint(structure, gm or state.gm, cg.groups, int(cg.labels.max()) + 1)


def brute_force_blocks(blocks: list[np.ndarray], energy_of, k: int) -> set[int]:
    """The k blocks whose zeroing leaves the least squared distance, over every choice of k."""
    return set(max(itertools.combinations(range(len(blocks)), k), key=lambda kept: sum(energy_of(b) for b in kept)))


@pytest.mark.parametrize("kind", ["filter", "channel", "shape"])
def test_each_layer_projection_is_the_nearest_point(kind):
    torch.manual_seed(0)
    state = analysed(Chain(), (torch.randn(1, 3, 6, 6),))
    gm = state.gm
    c = constraint(kind, state)
    x = {n: torch.randn_like(gm.get_parameter(n)) for n in c.names}
    masks = c.project(x, 0.5).masks
    w, m = x["conv2.weight"], masks["conv2.weight"]
    if kind == "filter":  # row + bias + the following BatchNorm's gamma and beta
        energy = [float((w[i] ** 2).sum() + x["conv2.bias"][i] ** 2 + x["bn2.weight"][i] ** 2
                        + x["bn2.bias"][i] ** 2) for i in range(8)]
        kept = {i for i in range(8) if m[i].all()}
        assert torch.equal(masks["bn2.bias"], m[:, 0, 0, 0]) and torch.equal(masks["conv2.bias"], m[:, 0, 0, 0])
    elif kind == "channel":
        energy = [float((w[:, i] ** 2).sum()) for i in range(8)]
        kept = {i for i in range(8) if m[:, i].all()}
    else:
        cols = w.reshape(8, -1)
        energy = [float((cols[:, i] ** 2).sum()) for i in range(cols.shape[1])]
        kept = set(np.flatnonzero(m.reshape(8, -1).all(0).numpy()).tolist())
        assert len(kept) == 36  # 72 columns, half kept; brute force over C(72, 36) is out of reach:
        assert min(energy[i] for i in kept) >= max(energy[i] for i in range(72) if i not in kept)
        return
    assert kept == brute_force_blocks([np.array([i]) for i in range(8)], lambda i: energy[i], 4)
    # the classifier's rows (the model output) are never a filter set; its input columns are a channel set
    assert ("fc.weight" in c.names) == (kind == "channel")
    assert ("conv1.weight" in c.names) == (kind == "filter")  # the image channels are not a channel set


def test_coupled_layers_are_projected_per_layer_and_group_keeps_the_coupled_set():
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    state = analysed(model, (torch.randn(1, 3, 8, 8),))
    x = {n: torch.randn_like(p) for n, p in state.gm.named_parameters()}
    stream = ["layers.0.conv2.0.weight", "layers.1.conv2.0.weight"]  # both write the stage's residual stream
    per_layer = constraint("filter", state).project({n: x[n] for n in constraint("filter", state).names}, 0.5)
    coupled = constraint("group", state).project(
        {n: x[n] for n in constraint("group", state).names}, 0.5)
    rows = {n: per_layer.masks[n].reshape(16, -1).all(1) for n in stream}
    assert all(int(r.sum()) == 8 for r in rows.values())  # half of each layer's 16 filters
    assert not torch.equal(*rows.values())  # chosen per layer, not per coupled channel
    assert torch.equal(*(coupled.masks[n].reshape(16, -1).any(1) for n in stream))


@pytest.mark.parametrize("kind", ["filter", "channel"])
def test_per_layer_targets_follow_the_plan_rules(kind):
    from graphprune.plan import load_plan

    plan = load_plan({"prune": [{"select": "*", "sparsity": 0.25}, {"select": "conv2", "sparsity": 0.75}]})
    state = analysed(Chain(), (torch.randn(1, 3, 6, 6),), plan=plan).with_(data=batches((3, 6, 6)))
    state = run_pipeline(state, [Admm(structure=kind, iterations=1, retrain_epochs=0, progress=False)])
    w = {n: state.gm.get_parameter(f"{n}.weight").detach() for n in ("conv1", "conv2", "fc")}
    zero_rows = {n: int((t.reshape(t.shape[0], -1) == 0).all(1).sum()) for n, t in w.items()}
    zero_inputs = {n: int((t.transpose(0, 1).reshape(t.shape[1], -1) == 0).all(1).sum()) for n, t in w.items()}
    if kind == "filter":  # conv1's rows by the '*' rule (25 % of 8), conv2's by its own (75 %)
        assert zero_rows == {"conv1": 2, "conv2": 6, "fc": 0} and zero_inputs == {"conv1": 0, "conv2": 0, "fc": 0}
    else:  # conv2 reads conv1's channels ('*' rule), fc reads conv2's (conv2's rule); no filter is zeroed
        assert zero_inputs == {"conv1": 0, "conv2": 2, "fc": 6} and zero_rows == {"conv1": 0, "conv2": 0, "fc": 0}


@pytest.mark.parametrize("kind", ["filter", "channel"])
def test_round_to_rounds_the_kept_blocks_of_filter_and_channel_sets(kind):
    """At 75 % of 8 blocks a set keeps 2; with round_to = 4 it keeps 4 (the next multiple), as the
    group set and allocation round a width."""
    state = analysed(Chain(), (torch.randn(1, 3, 6, 6),))
    cg = state.channels
    tensors = dict(state.gm.named_parameters())
    for round_to, kept in ((1, 2), (4, 4)):
        c = build_constraint(kind, state.gm, cg.groups, int(cg.labels.max()) + 1, round_to=round_to)
        masks = c.project(tensors, 0.75).masks
        w = masks["conv2.weight"]
        blocks = w if kind == "filter" else w.transpose(0, 1)  # rows of a filter set, input channels of a channel set
        alive = blocks.reshape(blocks.shape[0], -1).any(1)
        assert int(alive.sum()) == kept, (kind, round_to)


@pytest.mark.parametrize("structure", ["filter", "channel", "shape", "filter+shape"])
def test_per_layer_zeros_become_removal_and_the_rest_is_counted(structure):
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    data = batches((3, 8, 8), classes=10)
    state = analysed(model, (data[0][0][:1],), sparsity=0.7 if structure == "shape" else 0.5).with_(data=data)
    state = run_pipeline(state, [Admm(structure=structure, iterations=2, retrain_epochs=1, progress=False)])
    trained = copy.deepcopy(state.gm).eval()
    after = purify_to_fixed_point(run_pipeline(state, [RemoveChannels()]))
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert relative_error(after.gm.eval()(x), trained(x)) < 1e-5  # removal is exact
    census, dense = conv_census(after.gm), conv_census(model)
    assert census["conv_params"] < dense["conv_params"]  # per-layer zeros became physically smaller layers
    assert census["conv_nonzero"] <= state.artifacts["admm"]["census"]["conv_nonzero"]
    left = [w for n, w in after.gm.named_parameters() if n.endswith(".weight") and w.ndim == 4]
    assert census["zero_filters"] == sum(int((w.reshape(w.shape[0], -1) == 0).all(1).sum()) for w in left)


def test_shape_columns_dead_across_an_input_channel_are_removed():
    torch.manual_seed(0)
    state = analysed(Chain(), (torch.randn(1, 3, 6, 6),), sparsity=0.9).with_(data=batches((3, 6, 6)))
    state = run_pipeline(state, [Admm(structure="shape", iterations=1, retrain_epochs=0, progress=False)])
    w = state.gm.get_parameter("conv2.weight").detach()
    assert int((w.reshape(8, -1) != 0).any(0).sum()) == 8  # 10 % of 72 columns, rounded up
    live_inputs = int((w.transpose(0, 1).reshape(8, -1) != 0).any(1).sum())
    assert live_inputs < 8
    after = purify_to_fixed_point(run_pipeline(state, [RemoveChannels()]))
    assert after.gm.get_submodule("conv2").in_channels == live_inputs


def test_group_is_the_default_and_unknown_structures_are_refused():
    assert AdmmConfig().structure == "group" and Admm().structure == "group"
    with pytest.raises(InputError, match="admm.structure 'filters': expected one of group, filter, channel"):
        AdmmConfig(structure="filters")
    with pytest.raises(InputError, match="needs the traced module"):
        build_constraint("filter", nn.Linear(2, 2), [], 0)
    state = analysed(Chain(), (torch.randn(1, 3, 6, 6),))
    assert isinstance(constraint("channel", state), LayerConstraint)
