"""Masked equivalence through LayerNorm-coupled widths with ``statistics = "exact"`` on the model families
the issue names: torchvision ConvNeXt (nn.LayerNorm and LayerNorm2d through F.layer_norm), ViT (pre-norm
blocks, decomposed attention), Swin (window attention, patch merging through an opaque movement), timm's
ConvNeXt and ViT, and transformers' own RMSNorm class (``x.pow(2).mean(-1)`` by hand). Each fails with
``"renormalize"`` (the statistics change, and the report says so). The default run builds the same
classes small; GRAPHPRUNE_SWEEP-independent ``slow`` tests run the named torchvision models themselves."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import convnext, swin_transformer, vision_transformer

import graphprune
from graphprune.testing import masked_equivalence_error
from tests.helpers import calibrate, make_nontrivial

pytestmark = pytest.mark.usefixtures("single_thread")


def _check(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Exact mode: the hidden width halves, no inexact cut, masked-equivalent; renormalised: not."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    model = calibrate(make_nontrivial(model.eval()), (x,))
    exact = graphprune.compile(model, (x,), sparsity=0.5)
    assert exact.report.inexact == [] and exact.report.unknown_ops == []
    assert exact.report.artifacts["statistics"]["full_width"]  # LayerNorm-coupled widths were cut
    assert masked_equivalence_error(model, exact.module, exact.report.kept, (x,)) < 1e-5
    loose = graphprune.compile(model, (x,), sparsity=0.5, statistics="renormalize")
    assert loose.report.kept == exact.report.kept and loose.report.inexact
    assert masked_equivalence_error(model, loose.module, loose.report.kept, (x,)) > 1e-3


def _small_convnext() -> nn.Module:
    blocks = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(blocks, num_classes=5)


def _small_vit() -> nn.Module:
    return vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=5)


def _small_swin() -> nn.Module:
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                            window_size=[2, 2], num_classes=5)


@pytest.mark.parametrize(("make", "shape"), [(_small_convnext, (1, 3, 32, 32)), (_small_vit, (1, 3, 32, 32)),
                                             (_small_swin, (1, 3, 32, 32))], ids=["convnext", "vit", "swin"])
def test_torchvision_families_small(make, shape) -> None:
    _check(make(), shape)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kwargs", "shape"), [
    ("convnext_tiny", {}, (1, 3, 32, 32)), ("vit_b_16", {"image_size": 32}, (1, 3, 32, 32)),
    ("swin_t", {}, (1, 3, 64, 64))])
def test_torchvision_models(name: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    _check(getattr(torchvision.models, name)(**kwargs), shape)


@pytest.mark.parametrize(("name", "kwargs", "shape"), [
    ("convnext_atto", {}, (1, 3, 32, 32)), ("vit_tiny_patch16_224", {"img_size": 32, "depth": 2}, (1, 3, 32, 32))])
def test_timm_models(name: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    timm = pytest.importorskip("timm")
    _check(timm.create_model(name, **kwargs), shape)


class LlamaBlock(nn.Module):
    """transformers' own LlamaRMSNorm (fx-traceable by itself) on a residual stream of 32."""

    def __init__(self, norm: type) -> None:
        super().__init__()
        self.embed, self.norm, self.up = nn.Linear(8, 32), norm(32), nn.Linear(32, 32)
        self.final, self.head = norm(32), nn.Linear(32, 4)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.final.weight.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.up(self.norm(h))
        return self.head(self.final(h))


def test_transformers_rms_norm_written_by_hand() -> None:
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    _check(LlamaBlock(llama.LlamaRMSNorm), (2, 5, 8))
