"""Issue 11, defect 4: timm's CondConv (efficientnet_cc_b0_4e) and GroupNormAct (regnety_040_sgn) ended
in "RemovalError ... this is a graphprune bug".

- CondConv keeps its experts' kernels flat, (experts, out*in*kh*kw), and views the routed mix to
  (out, in, kh, kw) for F.conv2d. The view spread the flat dim over the kernel dims, and nothing froze
  the kernel-width "channels" this made, so a conv kernel was cut in width (the output's spatial size
  changed). A convolution weight's kernel dims now freeze whatever channels they carry.
- timm's GroupNormAct is traced through to ``F.group_norm(x, num_groups, ...)`` with the count baked in;
  whole groups were removed but the count stayed (68 groups for 576 channels), or, where it still
  divided, every group silently changed size. The count is now re-derived from the kept channels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import sweep_mode
from tests.helpers import compile_and_check

timm = pytest.importorskip("timm")
from timm.layers import CondConv2d, GroupNormAct  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")


class CondConvNet(nn.Module):
    """A routed 3x3 CondConv, a routed depthwise CondConv, and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.route = nn.Linear(8, 4)
        self.cond = CondConv2d(8, 16, 3, padding=1, num_experts=4)
        self.cond_dw = CondConv2d(16, 16, 3, padding=1, groups=16, num_experts=4)
        self.head = nn.Conv2d(16, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        routing = torch.sigmoid(self.route(x.mean((2, 3))))
        x = F.relu(self.cond(x, routing))
        return self.head(F.relu(self.cond_dw(x, routing)))


def test_condconv_compiles_with_kernels_whole_and_frozen_reported():
    model, x = CondConvNet(), torch.randn(1, 3, 8, 8)
    r = compile_and_check(model, (x,), sparsity=0.5)
    assert any(f["reason"] == "kernel dim of a convolution weight" for f in r.report.frozen)
    for name in ("cond.weight", "cond_dw.weight"):  # flat per-expert kernels: never cut (experts may be)
        assert r.module.get_parameter(name).shape[1] == model.get_parameter(name).shape[1]
    assert r.report.macs_after < r.report.macs_before  # the stem and head still prune


class GroupNormActNet(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = GroupNormAct(16, num_groups=groups)
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)))


@pytest.mark.parametrize("groups,sparsity", [(4, 0.5), (4, 0.25), (8, 0.6)])
def test_group_norm_act_keeps_whole_groups_and_rederives_the_count(groups, sparsity):
    model, x = GroupNormActNet(groups), torch.randn(1, 3, 6, 6)
    r = compile_and_check(model, (x,), sparsity=sparsity)
    kept = r.report.kept["conv.weight"][0]
    assert 0 < len(kept) < 16 and len(kept) % (16 // groups) == 0
    [norm] = [n for n in r.module.graph.nodes if n.target is F.group_norm]
    assert norm.args[1] == len(kept) // (16 // groups)


TIMM_MODELS = ["efficientnet_cc_b0_4e", "regnety_040_sgn"]


@pytest.mark.slow
@pytest.mark.skipif(sweep_mode() != "full", reason="the small models above test the same rules; "
                    "set GRAPHPRUNE_SWEEP=full to compile the timm models themselves (~10 s each)")
@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_models_of_the_issue_compile(name):
    model = timm.create_model(name, pretrained=False)
    r = compile_and_check(model, (torch.randn(1, 3, 64, 64),), sparsity=0.5)
    assert r.report.macs_after < r.report.macs_before
