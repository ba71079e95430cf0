"""Each StructADMM projection equals the brute-force minimiser of ||X - Z|| over its set, and the group
projection zeroes whole coupled channels so that remove-channels can delete them exactly."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import models_zoo
from graphprune.admm import projections as P
from graphprune.admm.constraints import (
    GroupConstraint,
    SequentialConstraint,
    WeightConstraint,
    group_parameter_names,
)
from graphprune.copy_on_write import unshare
from graphprune.passes import run_pipeline
from graphprune.state import CompileState
from graphprune.testing import relative_error
from passes import AnalyzeChannels, Canonicalize, RemoveChannels, Trace

pytestmark = pytest.mark.usefixtures("single_thread")


def brute_force(x: torch.Tensor, feasible) -> torch.Tensor:
    """argmin ||X - Z|| over every support the set allows (for a fixed support the best Z equals X on it)."""
    flat = x.flatten()
    best, best_dist = None, float("inf")
    for bits in itertools.product([False, True], repeat=flat.numel()):
        mask = torch.tensor(bits).view(x.shape)
        if not feasible(mask):
            continue
        dist = float(((x - x * mask) ** 2).sum())
        if dist < best_dist:
            best, best_dist = x * mask, dist
    return best


def rows_used(mask: torch.Tensor) -> int:
    return int(mask.reshape(mask.shape[0], -1).any(1).sum())


def in_channels_used(mask: torch.Tensor) -> int:
    return int(mask.transpose(0, 1).reshape(mask.shape[1], -1).any(1).sum())


def columns_used(mask: torch.Tensor) -> int:
    return int(mask.reshape(mask.shape[0], -1).any(0).sum())


def n_m_feasible(mask: torch.Tensor, n: int, m: int) -> bool:
    runs = mask.movedim(1, -1)
    return all(int(runs[..., i:i + m].sum(-1).max()) <= n for i in range(0, runs.shape[-1], m))


SHAPES = [(2, 3, 2, 1), (3, 2, 2, 1), (3, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["filter", "channel", "shape", "irregular"])
def test_block_projections_are_brute_force_minimisers(shape, kind):
    project, used, blocks = {
        "filter": (P.project_filters, rows_used, shape[0]),
        "channel": (P.project_channels, in_channels_used, shape[1]),
        "shape": (P.project_shapes, columns_used, int(np.prod(shape[1:]))),
        "irregular": (P.project_irregular, lambda m: int(m.sum()), int(np.prod(shape))),
    }[kind]
    g = torch.Generator().manual_seed(hash((shape, kind)) % 2**31)
    for trial in range(3):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        k = 1 + trial % max(1, blocks - 1)
        want = brute_force(x, lambda mask, k=k: used(mask) <= k)
        assert torch.equal(project(x, k), want), (kind, shape, k)


@pytest.mark.parametrize("shape,n,m", [((2, 6), 2, 4), ((1, 5, 2, 1), 1, 2), ((2, 3, 2), 2, 3)])
def test_n_m_projection_is_brute_force_minimiser(shape, n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    for _ in range(3):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        want = brute_force(x, lambda mask: n_m_feasible(mask, n, m))
        got = P.project_n_m(x, n, m)
        assert torch.equal(got, want)
        assert n_m_feasible(got != 0, n, m)


def test_sequential_combination_is_feasible_for_every_set():
    x = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    z = P.project_sequential(x, [lambda t: P.project_filters(t, 2), lambda t: P.project_shapes(t, 5)])
    assert rows_used(z != 0) <= 2 and columns_used(z != 0) <= 5
    assert torch.equal(z, z * (x != 0))


class Chain(nn.Module):
    """One hidden group (fc1 rows, fc1 bias, fc2 columns) plus a frozen output group."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def analysed(model: nn.Module, inputs: tuple) -> CompileState:
    state = run_pipeline(CompileState("m", model, inputs), [Trace(), Canonicalize(), AnalyzeChannels()])
    unshare(state.gm, model)
    return state


@pytest.mark.parametrize("sparsity", [0.2, 0.4, 0.6, 0.8])
def test_group_projection_is_brute_force_minimiser(sparsity):
    torch.manual_seed(3)
    state = analysed(Chain(), (torch.randn(1, 3),))
    (hidden,) = [g for g in state.channels.groups if g.num_prunable]
    params = dict(state.gm.named_parameters())
    names = group_parameter_names(state.gm, state.channels.groups)
    x = {n: params[n].detach().double() for n in names}
    proj = GroupConstraint(state.channels.groups, int(state.channels.labels.max()) + 1, names).project(x, sparsity)
    k = hidden.size - int(np.floor(sparsity * hidden.size))
    best, best_dist = None, float("inf")
    for r in range(k + 1):
        for subset in itertools.combinations(range(hidden.size), r):
            kept = np.isin(np.arange(hidden.size), subset)
            dist = 0.0
            for m in hidden.members:
                if m.fqn in x:
                    drop = torch.from_numpy(~kept[m.channel])
                    dist += float(x[m.fqn].movedim(m.dim, 0)[drop].pow(2).sum())
            if dist < best_dist:
                best, best_dist = kept, dist
    assert np.array_equal(proj.keep[hidden.labels], best)
    assert sum(float((x[n] - x[n] * proj.masks[n]).pow(2).sum()) for n in names) == pytest.approx(best_dist)


def test_group_projection_on_resnet20_is_coupled_and_removable():
    model, inputs = models_zoo.load("zoo:resnet20")
    state = analysed(model, inputs)
    gm, groups = state.gm, state.channels.groups
    names = group_parameter_names(gm, groups)
    params = dict(gm.named_parameters())
    constraint = GroupConstraint(groups, int(state.channels.labels.max()) + 1, names)
    proj = constraint.project({n: params[n] for n in names}, 0.6)
    with torch.no_grad():
        for n in names:
            params[n].mul_(proj.masks[n])
    coupled = 0
    for group in groups:
        if not group.num_prunable:
            assert proj.keep[group.labels].all()
            continue
        kept = proj.keep[group.labels]
        assert kept.sum() == group.size - int(0.6 * group.size)
        for m in group.members:
            if m.fqn in params:  # a member's nonzero slices are exactly the group's kept channels
                t = params[m.fqn].detach()
                alive = (t != 0).movedim(m.dim, 0).reshape(t.shape[m.dim], -1).any(1).numpy()
                assert np.array_equal(alive, kept[m.channel]), m.fqn
        coupled += len({m.fqn for m in group.members if m.dim == 0}) > 3
    assert coupled >= 3  # the three residual stages each tie several convs
    z_model = copy.deepcopy(gm).eval()
    pruned = RemoveChannels().run(state.with_(keep=proj.keep)).gm.eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_error(pruned(x), z_model(x)) < 1e-5
    assert sum(p.numel() for p in pruned.parameters()) < 0.3 * sum(p.numel() for p in model.parameters())


def test_weight_and_sequential_constraints_combine_masks():
    model = Chain()
    x = {"fc1.weight": model.fc1.weight.detach(), "fc2.weight": model.fc2.weight.detach()}
    irregular = WeightConstraint("irregular", tuple(x))
    n_m = WeightConstraint("1:2", ("fc1.weight",))
    proj = SequentialConstraint((n_m, irregular)).project(x, 0.5)
    fc1 = proj.masks["fc1.weight"]
    assert n_m_feasible(fc1, 1, 2)
    assert int(fc1.sum()) <= x["fc1.weight"].numel() - x["fc1.weight"].numel() // 2
    assert int(proj.masks["fc2.weight"].sum()) == 5


def test_group_projection_splits_a_concatenation_group_like_allocate():
    """Producer a (4 channels, small weights) and b (8, large) concatenated into one consumer: the
    projection keeps the best half of *each* producer, as the allocate pass does, not b's channels only."""
    from graphprune.channels.groups import GroupMember, PruningGroup

    channels = np.arange(12)
    group = PruningGroup(index=0, labels=channels, prunable=np.ones(12, bool), inexact=np.zeros(12, bool),
                         members=[GroupMember("a", 0, channels[:4]), GroupMember("b", 0, channels[4:]),
                                  GroupMember("c", 1, channels)])
    torch.manual_seed(0)
    tensors = {"a": torch.randn(4, 3) * 0.1, "b": torch.randn(8, 3) * 10, "c": torch.randn(5, 12)}
    projection = P.project_groups(tensors, [group], 12, 0.5)
    kept = projection.kept[0]
    assert kept[:4].sum() == 2 and kept[4:].sum() == 4
    energy = (tensors["a"] ** 2).sum(1).tolist() + (tensors["b"] ** 2).sum(1).tolist()
    energy = np.array(energy) + (tensors["c"] ** 2).sum(0).numpy()
    assert set(np.flatnonzero(kept[:4])) == set(np.argsort(-energy[:4])[:2])
    assert set(np.flatnonzero(kept[4:]) + 4) == set(np.argsort(-energy[4:])[:4] + 4)
    assert bool((projection.masks["a"][~torch.from_numpy(kept[:4])] == 0).all())
