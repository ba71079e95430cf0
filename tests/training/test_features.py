"""``graphprune.training.features``: the pruned model's per-channel-norm outputs are matched to the dense
model's at the channels it kept; zero where the two agree, a gradient into the pruned model only, no hook
left on either model, and the ``finetune`` pass's refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
from graphprune.errors import InputError
from graphprune.passes import run_pipeline
from graphprune.plan import load_plan
from graphprune.state import CompileState
from graphprune.training.features import FeaturePoint, capture, feature_loss, feature_points
from passes import Allocate, AnalyzeChannels, Canonicalize, RemoveChannels, ScoreMagnitude, Trace

pytestmark = pytest.mark.usefixtures("single_thread")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1),
                         nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).eval()


def _pruned(model: nn.Module, x: torch.Tensor) -> CompileState:
    """``model`` with half of each group removed (the passes the compiler runs before ``finetune``)."""
    state = CompileState("net", model, (x[:1],)).with_(plan=load_plan({"sparsity": 0.5}))
    return run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels(), ScoreMagnitude(),
                                Allocate(plan=state.plan), RemoveChannels()])


def test_loss_is_the_mean_squared_error_against_the_kept_dense_channels() -> None:
    g = torch.Generator().manual_seed(0)
    dense = {"a": torch.randn(2, 8, 3, 3, generator=g), "b": torch.randn(2, 5, generator=g)}
    points = [FeaturePoint("a", torch.tensor([1, 3, 4, 6])), FeaturePoint("b", None)]
    student = {"a": dense["a"][:, [1, 3, 4, 6]].clone(), "b": dense["b"].clone()}
    assert float(feature_loss(points, student, dense)) == 0.0
    student["a"] = student["a"] + 0.5  # every element of point "a" off by 0.5: MSE 0.25, mean over 2 points
    assert float(feature_loss(points, student, dense)) == pytest.approx(0.125)
    with pytest.raises(InputError, match=r"finetune.distill = 'features': a gives \[2, 3, 3, 3\] in the pruned"):
        feature_loss(points, {**student, "a": student["a"][:, :3]}, dense)


def test_pruned_features_equal_the_dense_ones_where_removal_changed_nothing_upstream() -> None:
    """The first norm sees the image through a conv that lost output channels only: in eval mode the pruned
    model's feature there *is* the dense one at the kept channels, so the points' indices are the right ones."""
    model = _net()
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    state = _pruned(model, x)
    points = feature_points(state.gm, model, state.kept)
    assert [p.path for p in points] == ["1", "4"]
    assert points[0].kept.tolist() == state.kept["1.weight"][0] and len(points[0].kept) == 4
    with capture(state.gm, ["1", "4"]) as student, capture(model, ["1", "4"]) as dense, torch.no_grad():
        state.gm(x), model(x)
    assert feature_loss(points[:1], student, dense) < 1e-12
    assert feature_loss(points[1:], student, dense) > 1e-3  # the second conv lost input channels
    assert not any(m._forward_hooks for m in (*state.gm.modules(), *model.modules()))


def test_gradient_reaches_the_pruned_model_and_not_the_dense_one() -> None:
    model = _net()
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    state = _pruned(model, x)
    student = state.gm.train()
    points = feature_points(student, model, state.kept)
    with capture(student, ["1", "4"]) as s:
        student(x)
    with capture(model, ["1", "4"]) as t, torch.no_grad():
        model(x)
    feature_loss(points, s, t).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in student.named_parameters()
               if not n.startswith("8."))  # every layer up to the last norm; the classifier is past it
    assert all(p.grad is None for p in model.parameters())


def test_finetune_with_features_trains_differently_and_leaves_the_dense_model_alone() -> None:
    model = _net()
    g = torch.Generator().manual_seed(2)
    data = [(torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(4)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runs = {}
    for distill in ("logits", "features"):
        plan = {"sparsity": 0.5, "finetune": {"epochs": 1, "distill": distill, "progress": False}}
        runs[distill] = graphprune.compile(model, (data[0][0][:1],), plan=plan, data=data)
    assert runs["features"].report.artifacts["finetune"]["settings"]["distill"] == "features"
    assert not torch.equal(runs["features"].module.state_dict()["0.weight"],
                           runs["logits"].module.state_dict()["0.weight"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not any(m._forward_hooks for m in model.modules()) and not model.training


def test_bad_distill_options_are_refused_in_one_line() -> None:
    model = _net()
    data = [(torch.randn(8, 3, 6, 6), torch.arange(8) % 4)]
    with pytest.raises(InputError, match=r"^finetune\.distill: expected true, false, 'logits' or 'features', "
                                         r"got 'feature'$"):
        graphprune.compile(model, (data[0][0][:1],), plan={"sparsity": 0.5, "finetune": {"distill": "feature"}},
                           data=data)
    with pytest.raises(InputError, match=r"^finetune\.feature_weight: expected a number >= 0, got -1"):
        graphprune.compile(model, (data[0][0][:1],), plan={"sparsity": 0.5, "finetune": {
            "distill": "features", "feature_weight": -1.0}}, data=data)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    batches = [(torch.randn(8, 4), torch.arange(8) % 3)]
    with pytest.raises(InputError, match="no per-channel norm .* use distill = 'logits'"):
        graphprune.compile(mlp, (batches[0][0][:1],), plan={"sparsity": 0.5, "finetune": {"distill": "features"}},
                           data=batches)
