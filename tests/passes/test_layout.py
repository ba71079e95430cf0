"""``[emit] layout``: a channels-last result computes what the contiguous one does, never touches the
user's tensors, is refused with the reason where an op needs contiguous input, and ``auto`` follows the
measurement. Wall-clock time is never asserted: ``auto``'s timing is replaced by a stand-in."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune
import models_zoo
import passes.layout
from graphprune.errors import PlanError
from graphprune.export import emit
from graphprune.plan import load_plan
from graphprune.scheduler import schedule
from graphprune.testing import masked_equivalence_error, relative_error

pytestmark = pytest.mark.usefixtures("single_thread")
CL = torch.channels_last


def _plan(layout: str | None = None, **emit_keys):  # noqa: ANN003, ANN202
    return {"prune": {"sparsity": 0.5}, "emit": {"fuse": True, **({"layout": layout} if layout else {}), **emit_keys}}


def _conv_weights(module: nn.Module) -> list[torch.Tensor]:
    return [p for p in module.parameters() if p.ndim == 4]


def test_a_channels_last_result_is_the_contiguous_result_and_the_user_model_is_untouched():
    model, inputs = models_zoo.load("zoo:resnet20")
    before = {n: (p.data_ptr(), p.clone()) for n, p in model.state_dict().items()}
    plain = graphprune.compile(model, inputs, plan=_plan())
    laid = graphprune.compile(model, inputs, plan=_plan("channels_last"))
    assert laid.report.passes[-2:] == ["fuse", "layout"]
    assert laid.report.artifacts["layout"]["memory_format"] == "channels_last"
    weights = _conv_weights(laid.module)
    assert weights and all(w.is_contiguous(memory_format=CL) for w in weights)
    assert any(not w.is_contiguous() for w in weights)  # a 1x1 kernel is contiguous either way
    assert all(w.is_contiguous() for w in _conv_weights(plain.module))
    with torch.no_grad():
        assert relative_error(laid.module(*inputs), plain.module(*inputs)) < 1e-5
    assert masked_equivalence_error(model, laid.module, laid.report.kept, inputs) < 1e-4
    for name, tensor in model.state_dict().items():  # same storage, same values, same (contiguous) strides
        assert tensor.data_ptr() == before[name][0] and torch.equal(tensor, before[name][1]) and tensor.is_contiguous()


class _FlattensAConvOutput(nn.Module):
    """``view(n, -1)`` of a conv output: fine on NCHW, an error on a channels-last tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):  # noqa: ANN001, ANN201
        y = F.relu(self.conv(x))
        return self.fc(y.view(y.size(0), -1))


def test_an_op_that_needs_contiguous_input_keeps_the_module_and_says_why():
    model, x = _FlattensAConvOutput().eval(), torch.randn(2, 3, 6, 6)
    result = graphprune.compile(model, (x,), plan=_plan("channels_last"))
    record = result.report.artifacts["layout"]
    assert record["memory_format"] == "contiguous"
    assert "fails on the example inputs" in record["why"] and "RuntimeError" in record["why"]
    assert all(w.is_contiguous() for w in _conv_weights(result.module))
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5


class _FeatureMaps(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 8, 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        features = self.head(torch.relu(self.stem(x)))
        return {"features": features, "pooled": features.mean((2, 3))}


def test_four_dimensional_outputs_come_back_contiguous():
    model, x = _FeatureMaps().eval(), torch.randn(1, 3, 10, 10)
    result = graphprune.compile(model, (x,), plan=_plan("channels_last"))
    assert result.report.artifacts["layout"]["memory_format"] == "channels_last"
    with torch.no_grad():
        out, want = result.module(x), model(x)
    assert out["features"].shape == want["features"].shape == (1, 8, 10, 10)
    assert out["features"].is_contiguous() and out["pooled"].shape == (1, 8)
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-4


@pytest.mark.parametrize(("ratio", "chosen"), [(0.6, "channels_last"), (0.98, "contiguous")])
def test_auto_converts_only_what_is_measured_faster(monkeypatch, ratio: float, chosen: str):
    calls = []

    def stand_in(contiguous, candidate, modules, **settings):  # noqa: ANN001, ANN003, ANN202
        calls.append(settings)
        return ratio

    monkeypatch.setattr(passes.layout, "measured_fraction", stand_in)
    model, inputs = models_zoo.load("zoo:small_cnn")
    result = graphprune.compile(model, inputs, plan=_plan("auto"))
    record = result.report.artifacts["layout"]
    assert len(calls) == 1 and calls[0]["num_threads"] == 1
    assert record["memory_format"] == chosen and record["time_ratio"] == ratio
    assert all(w.is_contiguous(memory_format=CL) == (chosen == "channels_last") for w in _conv_weights(result.module))


def _passes(plan: dict) -> list:
    return [step.pass_ for step in schedule(load_plan(plan)).steps if hasattr(step, "pass_")]


def test_a_latency_budget_schedules_auto_layout_after_fuse_unless_the_plan_says_otherwise():
    budget = {"prune": {"budget": {"latency": 0.5, "batch": 4, "threads": 2}}}
    names = [p.name for p in _passes(budget)]
    assert names[-2:] == ["fuse", "layout"]
    layout = _passes(budget)[-1]
    assert (layout.memory_format, layout.batch, layout.threads) == ("auto", 4, 2)
    assert "layout" not in [p.name for p in _passes({**budget, "emit": {"layout": "contiguous"}})]
    assert "layout" not in [p.name for p in _passes({"prune": {"sparsity": 0.5}})]
    written = [p.name for p in _passes({"prune": {"sparsity": 0.5}, "emit": {"layout": "auto", "path": "m.pt2"}})]
    assert written.index("layout") < written.index("emit")


def test_an_unknown_layout_is_a_located_one_line_error():
    with pytest.raises(PlanError) as err:
        load_plan({"prune": {"sparsity": 0.5}, "emit": {"layout": "nhwc"}})
    message = str(err.value)
    assert "emit.layout" in message and "channels_last" in message and "\n" not in message


def test_a_channels_last_result_exports_and_reloads_with_parity(tmp_path):
    model, inputs = models_zoo.load("zoo:resnet20")
    result = graphprune.compile(model, inputs, plan=_plan("channels_last"))
    record = emit(result.module, inputs, tmp_path / "m.pt2").to_dict()
    assert record["parity_max_abs"] is not None and record["parity_max_abs"] < 1e-4
    loaded = torch.export.load(str(tmp_path / "m.pt2")).module()
    with torch.no_grad():
        assert relative_error(loaded(*inputs), result.module(*inputs)) < 1e-5
