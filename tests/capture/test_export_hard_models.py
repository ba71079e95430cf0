"""Models symbolic tracing cannot capture compile through the torch.export fallback (the default
capture, "auto"): torchvision's RAFT (size checks, a correlation pyramid, instance norm), timm's Gemma 4
ViT (a ``no_grad`` region, clamps by infinite buffers), einops layers and functions. Each is smaller,
names no unknown op, and equals the masked dense model wherever the report lists no inexact reason."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
from graphprune.testing import masked_equivalence_error

pytestmark = pytest.mark.usefixtures("single_thread")


def _compiled(model: nn.Module, inputs: tuple, traced: tuple | None = None) -> tuple:
    """The report and masked error of a default compile, its capture and size checked; and the result."""
    result = graphprune.compile(model, inputs)
    report = result.report
    err = masked_equivalence_error(model, result.module, report.kept, inputs, pruned_inputs=traced)
    assert report.artifacts["trace"]["capture"] == "export"
    assert report.artifacts["trace"]["why"].startswith("fx tracing failed")
    assert report.unknown_ops == []
    assert report.params_before / report.params_after >= 1.3
    return report, err, result


def test_raft_small_compiles() -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.optical_flow.raft_small(weights=None).eval()
    images = (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128))
    report, err, _ = _compiled(model, (*images, 2), images)  # 2 flow updates (default 12): same ops, shorter
    assert report.inexact == [] and err < 1e-4


def test_gemma4_vit_compiles() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("gemma4_vit_167m", pretrained=False, depth=2, img_size=64).eval()
    report, err, result = _compiled(model, (torch.randn(1, 3, 64, 64),))
    assert not any("higher_order" in str(n.target) for n in result.state.gm.graph.nodes)  # the no_grad region inlined
    if report.inexact:  # RMSNorm over a pruned hidden width: the statistic really changed
        assert err > 1e-3
    else:
        assert err < 1e-4


def test_einops_layers_and_functions_compile() -> None:
    einops = pytest.importorskip("einops")
    from einops.layers.torch import Rearrange

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.to_tokens = Rearrange("b c h w -> b (h w) c")
            self.fc1, self.fc2, self.head = nn.Linear(16, 32), nn.Linear(32, 16), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.to_tokens(torch.relu(self.conv(x)))
            t = t + self.fc2(torch.relu(self.fc1(t)))
            return self.head(einops.rearrange(t, "b n c -> b c n").mean(-1))

    torch.manual_seed(0)
    report, err, _ = _compiled(Tokens().eval(), (torch.randn(2, 3, 8, 8),))
    assert report.inexact == [] and err < 1e-4
    assert "Rearrange" in report.artifacts["trace"]["why"]
