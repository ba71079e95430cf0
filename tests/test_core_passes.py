"""Each core pass alone on a tiny hand-built graph, its requirements satisfied by fixtures that run
only the passes before it; asserts the facts it provides and its effect, structurally and numerically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from graphprune.passes import PipelineError, run_pass, run_pipeline
from graphprune.plan import load_plan
from graphprune.state import CompileState, Options
from graphprune.testing import masked_equivalence_error
from passes import Allocate, AnalyzeChannels, Canonicalize, PropagateShapes, RemoveChannels, ScoreMagnitude, Trace
from tests.helpers import calibrate

pytestmark = pytest.mark.usefixtures("single_thread")


class Tiny(nn.Module):
    """conv -> bn -> relu -> channel shuffle (view/transpose/view) -> conv: 5 interesting nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv1(x)))
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.conv2(y)


X = torch.randn(2, 3, 6, 6)


@pytest.fixture
def model() -> nn.Module:
    return calibrate(Tiny().eval(), (X,))


@pytest.fixture
def traced(model) -> CompileState:
    return run_pass(CompileState("tiny", model, (X,), Options(sparsity=0.5)), Trace())


@pytest.fixture
def canonical(traced) -> CompileState:
    return run_pass(traced, Canonicalize())


@pytest.fixture
def grouped(canonical) -> CompileState:
    return run_pass(canonical, AnalyzeChannels())


@pytest.fixture
def scored(grouped) -> CompileState:
    return run_pass(grouped, ScoreMagnitude(p=2))


@pytest.fixture
def allocated(scored) -> CompileState:
    return run_pass(scored, Allocate())


def test_trace_records_shapes_and_counts_macs(traced) -> None:
    assert {"traced", "shapes"} <= traced.facts
    out = [n for n in traced.gm.graph.nodes if n.op == "output"][0].args[0]
    assert traced.values[out.name].shape == (2, 4, 6, 6)
    assert traced.macs["dense"] == 2 * 36 * (8 * 3 * 9 + 4 * 8)


def test_canonicalize_folds_the_shuffle_into_one_index_select(canonical) -> None:
    targets = [n.target for n in canonical.gm.graph.nodes if n.op in ("call_function", "call_method")]
    assert torch.index_select in targets and "transpose" not in targets
    torch.testing.assert_close(canonical.gm(X), canonical.model(X))


def test_analyze_channels_groups_the_hidden_width(grouped) -> None:
    prunable = [g for g in grouped.channels.groups if g.num_prunable]
    assert len(prunable) == 1 and prunable[0].size == 8
    members = {(m.fqn, m.dim) for m in prunable[0].members}
    assert {("conv1.weight", 0), ("conv1.bias", 0), ("bn.weight", 0), ("conv2.weight", 1)} <= members


def test_score_magnitude_is_the_summed_member_norm(grouped, model) -> None:
    state = run_pass(grouped, ScoreMagnitude(p=1))
    group = next(g for g in grouped.channels.groups if g.num_prunable)
    score = state.scores["l1"][group.index]
    by_channel = {}
    for m in group.members:
        if m.fqn in dict(model.named_parameters()):
            t = dict(model.named_parameters())[m.fqn].detach()
            norms = t.abs().sum(dim=[d for d in range(t.ndim) if d != m.dim]) if t.ndim > 1 else t.abs()
            for i, ch in enumerate(m.channel):
                by_channel[int(ch)] = by_channel.get(int(ch), 0.0) + float(norms[i])
    np.testing.assert_allclose(score, [by_channel[i] for i in range(group.size)], rtol=1e-5)


def test_allocate_keeps_the_best_half(scored) -> None:
    state = run_pass(scored, Allocate())
    group = next(g for g in scored.channels.groups if g.num_prunable)
    kept = state.keep[group.labels]
    score = scored.scores["l2"][group.index]
    assert kept.sum() == 4
    assert score[kept].min() >= score[~kept].max()


def test_allocate_refuses_without_scores(grouped) -> None:
    with pytest.raises(PipelineError, match="requires"):
        run_pass(grouped, Allocate(plan=load_plan()))


def test_remove_channels_shrinks_and_keeps_the_masked_function(allocated, model) -> None:
    state = run_pass(allocated, RemoveChannels())
    assert "removed" in state.facts and "groups" not in state.facts  # invalidated
    assert state.gm.conv1.out_channels == 4 and state.gm.conv2.in_channels == 4 and state.gm.bn.num_features == 4
    assert masked_equivalence_error(model, state.gm, state.kept, (X,)) < 1e-6


def test_propagate_shapes_reprovides_shapes_after_removal(allocated) -> None:
    state = run_pass(allocated, RemoveChannels())
    state = run_pipeline(state, [PropagateShapes(), AnalyzeChannels()])
    out = [n for n in state.gm.graph.nodes if n.op == "output"][0].args[0]
    assert state.values[out.name].shape == (2, 4, 6, 6)
    assert next(g for g in state.channels.groups if g.num_prunable).size == 4
