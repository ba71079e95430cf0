"""torchvision's segmentation models (dict outputs) and the backbone + FPN of its detection models
(OrderedDict of feature levels): every output leaf keeps its shape, and the result is the masked
dense model. Default run: one model of each kind; ``GRAPHPRUNE_SWEEP=full``: all of them."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import detection, segmentation

import graphprune
from graphprune.testing import masked_equivalence_error
from tests.conftest import sweep_mode

SEGMENTATION = ["fcn_resnet50", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet101",
                "deeplabv3_resnet50", "deeplabv3_resnet101"]
DETECTION = ["fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2",
             "fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2",
             "fcos_resnet50_fpn", "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "keypointrcnn_resnet50_fpn",
             "ssd300_vgg16", "ssdlite320_mobilenet_v3_large"]
INPUT_SIZE = {"ssd300_vgg16": 300}
DEFAULT_RUN = {"fcn_resnet50", "lraspp_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn"}

pytestmark = pytest.mark.usefixtures("single_thread")


def _cases(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n not in DEFAULT_RUN else n
            for n in names if n in DEFAULT_RUN or sweep_mode() == "full"]


def _check(model: torch.nn.Module, size: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size)
    result = graphprune.compile(model.eval(), (x,), sparsity=0.5)
    with torch.no_grad():
        dense, out = model(x), result.module(x)
    assert type(out) is type(dense) and list(out) == list(dense)
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-4  # shapes too
    assert result.report.macs_reduction > 1.5


@pytest.mark.parametrize("name", _cases(SEGMENTATION))
def test_segmentation_models_keep_every_class(name: str) -> None:
    _check(getattr(segmentation, name)(weights=None, weights_backbone=None), 64)


@pytest.mark.parametrize("name", _cases(DETECTION))
def test_detection_backbones_keep_every_feature_level(name: str) -> None:
    model = getattr(detection, name)(weights=None, weights_backbone=None)
    _check(model.backbone, INPUT_SIZE.get(name, 64))


def test_cli_prunes_a_detection_backbone_and_its_export_keeps_every_level(tmp_path) -> None:
    from graphprune.cli import main

    out = tmp_path / "backbone.pt2"
    code = main(["compile", "torchvision:fasterrcnn_mobilenet_v3_large_fpn", "--submodule", "backbone",
                 "--input-size", "64", "--sparsity", "0.5", "--out", str(out), "-q"])
    assert code == 0
    program = torch.export.load(str(out)).module()
    backbone = detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).backbone.eval()
    for batch in (1, 2):
        x = torch.randn(batch, 3, 64, 64)
        with torch.no_grad():
            got, want = program(x), backbone(x)
        assert list(got) == list(want)
        assert all(got[k].shape == want[k].shape for k in want) and want["0"].shape[1] == 256
