"""graphprune.statistics: with ``statistics = "exact"`` a removal through LayerNorm / RMSNorm / a mean or
variance over channels keeps the statistic over the original width, so the pruned model equals the dense
one with the removed channels zeroed, and the report lists no inexact cut; with ``"renormalize"`` the
statistics are over the kept channels and every cut is reported. A statistic whose removed channels are
not provably zero at its input stays renormalised and is reported, never silently wrong."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune
from graphprune.errors import InputError, PlanError
from graphprune.testing import masked_equivalence_error
from tests.helpers import calibrate, make_nontrivial

pytestmark = pytest.mark.usefixtures("single_thread")


class Statistics(nn.Module):
    """Every statistic form on one 16-wide stream: LayerNorm and RMSNorm modules, F.layer_norm, Llama's
    hand-written RMSNorm (``x.pow(2).mean(-1)``), a channel mean and a variance over channels."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.ln, self.rms = nn.Linear(6, 16), nn.LayerNorm(16), nn.RMSNorm(16)
        self.fc2, self.fc3, self.head = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.w, self.b = nn.Parameter(torch.rand(16) + 0.5), nn.Parameter(torch.randn(16) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = h + self.fc2(self.rms(self.ln(h)))
        h = F.layer_norm(h, (16,), self.w, self.b)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        h = self.fc3(h) + h.mean(-1, keepdim=True) + torch.var(h, -1, keepdim=True)
        return self.head(h)


class HandWrittenLayerNorm(nn.Module):
    """``(x - mean) ** 2``: a removed (zeroed) channel reads ``-mean`` there, not zero."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.head = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        u = h.mean(-1, keepdim=True)
        return self.head((h - u) / torch.sqrt((h - u).pow(2).mean(-1, keepdim=True) + 1e-5))


def _compile(model: nn.Module, x: torch.Tensor, statistics: str) -> tuple[graphprune.api.Result, float]:
    model = calibrate(make_nontrivial(model.eval()), (x,))
    result = graphprune.compile(model, (x,), sparsity=0.5, statistics=statistics)
    return result, masked_equivalence_error(model, result.module, result.report.kept, (x,))


def test_exact_statistics_make_removal_through_every_form_exact() -> None:
    torch.manual_seed(0)
    result, err = _compile(Statistics(), torch.randn(4, 6), "exact")
    assert len(result.report.kept["fc1.weight"][0]) == 8  # the stream through every statistic lost half
    assert err < 1e-5
    assert result.report.inexact == []
    assert set(result.report.artifacts["statistics"]["full_width"]) >= {"ln", "rms", "layer_norm", "mean", "mean_1",
                                                                         "var"}


def test_renormalize_reports_every_cut_statistic_and_differs_from_the_masked_model() -> None:
    torch.manual_seed(0)
    result, err = _compile(Statistics(), torch.randn(4, 6), "renormalize")
    assert err > 1e-3
    cut = {node for entry in result.report.inexact for node in entry["nodes"]}
    assert cut == {"ln", "rms", "layer_norm", "mean", "mean_1", "var"}


def test_unproved_zero_stays_renormalised_and_is_reported() -> None:
    torch.manual_seed(0)
    result, _ = _compile(HandWrittenLayerNorm(), torch.randn(4, 6), "exact")
    reasons = {node: entry["reason"] for entry in result.report.inexact for node in entry["nodes"]}
    assert list(reasons) == ["mean_1"]  # the mean of (h - u)^2; the mean of h itself is exact
    assert "not provably zero" in reasons["mean_1"]
    assert result.report.artifacts["statistics"] == {"full_width": ["mean"], "renormalised": ["mean_1"]}


def test_second_round_keeps_the_original_width() -> None:
    """Two rounds (sparsity reached in steps): the kernels keep the dense count through the second."""
    torch.manual_seed(0)
    model = calibrate(make_nontrivial(Statistics().eval()), (torch.randn(4, 6),))
    x = torch.randn(4, 6)
    first = graphprune.compile(model, (x,), sparsity=0.5)
    second = graphprune.compile(first.module, (x,), sparsity=0.5)
    assert len(second.report.kept["fc1.weight"][0]) == 4
    assert second.report.inexact == []
    masked_first = graphprune.testing.masked_model(first.module, second.report.kept)
    with torch.no_grad():
        assert torch.allclose(second.module(x), masked_first(x), atol=1e-5)


@pytest.mark.parametrize(("plan", "error"), [({"statistics": "full"}, PlanError),
                                             ({"allocate": {"statistics": 1}}, PlanError)])
def test_bad_statistics_value_is_one_line_with_its_place(plan: dict, error: type) -> None:
    with pytest.raises(error, match=r"statistics: expected one of 'exact', 'renormalize'") as info:
        graphprune.compile(nn.Linear(2, 2), torch.randn(1, 2), plan)
    assert "\n" not in str(info.value)


def test_bad_statistics_keyword_is_an_input_error() -> None:
    with pytest.raises(InputError, match="statistics: expected one of 'exact', 'renormalize', got 'yes'"):
        graphprune.compile(nn.Linear(2, 2), torch.randn(1, 2), statistics="yes")


def test_apply_replays_the_full_width_statistics() -> None:
    torch.manual_seed(0)
    model = calibrate(make_nontrivial(Statistics().eval()), (torch.randn(4, 6),))
    x = torch.randn(4, 6)
    result = graphprune.compile(model, (x,), sparsity=0.5)
    replayed = graphprune.apply(model, result.report.to_dict(), (x,))
    with torch.no_grad():
        assert torch.allclose(replayed(x), result.module(x), atol=1e-6)


def test_exported_rewritten_model_matches(tmp_path) -> None:
    """The full-width kernels are plain tensor ops: .pt2 (torch.export), ONNX and the standalone .py
    compute what the pruned module computes."""
    from graphprune.export import emit

    torch.manual_seed(0)
    result, _ = _compile(Statistics(), torch.randn(4, 6), "exact")
    x = torch.randn(4, 6)
    for suffix, tol in ((".pt2", 1e-6), (".onnx", 1e-4), (".py", 1e-6)):
        record = emit(result.module, (x,), tmp_path / f"m{suffix}")
        assert record.parity_max_abs <= tol, suffix
    program = torch.export.load(str(tmp_path / "m.pt2"))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), result.module(x), atol=1e-6)
