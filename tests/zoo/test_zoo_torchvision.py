"""torchvision by name beyond classification: segmentation models whole, video models with 5-D clips,
detection models by part (``--submodule backbone``) with the inputs that part really gets, and a whole
detection model refused in one line. The default run builds a bounded subset of each family;
GRAPHPRUNE_SWEEP=full builds every model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch._subclasses import FakeTensorMode

from graphprune.cli import main
from graphprune.errors import InputError, UnknownModelError
from models_zoo import load
from models_zoo._common import random_inputs
from tests.conftest import sweep_mode

torchvision = pytest.importorskip("torchvision")
from models_zoo import _torchvision as tv  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

SEGMENTATION = torchvision.models.list_models(module=torchvision.models.segmentation)
VIDEO = torchvision.models.list_models(module=torchvision.models.video)
DETECTION = torchvision.models.list_models(module=torchvision.models.detection)
CLIP = {"r3d_18": 112, "mc3_18": 112, "r2plus1d_18": 112}  # spatial size of the default 16-frame clip
FULL = sweep_mode() == "full"


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")


def test_every_family_is_in_the_catalog() -> None:
    names = tv.names(torchvision)
    assert {*SEGMENTATION, *VIDEO, *DETECTION, "resnet18"} <= set(names)
    assert {"fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large", "r3d_18", "s3d", "mvit_v2_s",
            "swin3d_t", "fasterrcnn_resnet50_fpn"} <= set(names)


# --------------------------------------------------------------------------------- segmentation


def _check_segmentation(name: str) -> None:
    model, (x,) = load(f"torchvision:{name}", input_size=64)
    assert x.shape == (1, 3, 64, 64) and not model.training
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"out"} and out["out"].shape == (1, 21, 64, 64)  # no aux head, 21 VOC classes


@pytest.mark.slow
@pytest.mark.parametrize("name", SEGMENTATION if FULL else ["lraspp_mobilenet_v3_large",
                                                             "deeplabv3_mobilenet_v3_large"])
def test_segmentation_models_load_whole(name: str) -> None:
    _check_segmentation(name)


def test_segmentation_default_input_is_224() -> None:
    _, (x,) = load("torchvision:lraspp_mobilenet_v3_large")
    assert x.shape == (1, 3, 224, 224)


# ---------------------------------------------------------------------------------------- video


def _check_video(name: str) -> None:
    model, (x,) = load(f"torchvision:{name}")
    size = CLIP.get(name, 224)
    assert x.shape == (1, 3, 16, size, size)
    with FakeTensorMode(allow_non_fake_inputs=True), torch.no_grad():  # shapes only: no real compute
        assert model(x).shape == (1, 400)


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEO if FULL else ["mc3_18", "s3d"])
def test_video_models_take_a_16_frame_clip(name: str) -> None:
    _check_video(name)


def test_fixed_size_video_model_refuses_another_size() -> None:
    with pytest.raises(InputError, match="'torchvision:mvit_v2_s' is built for 224x224 inputs"):
        load("torchvision:mvit_v2_s", input_size=112)


def test_cli_compiles_a_video_model_by_name(tmp_path: Path) -> None:
    out, report = tmp_path / "v.pt", tmp_path / "r.json"
    assert main(["compile", "torchvision:mc3_18", "--input-size", "32", "--sparsity", "0.5", "--out", str(out),
                 "--report", str(report), "-q"]) == 0
    module = torch.load(out, weights_only=False)
    assert module(torch.randn(1, 3, 16, 32, 32)).shape == (1, 400)
    data = json.loads(report.read_text())
    assert data["params_after"] < data["params_before"]


# ------------------------------------------------------------------------------------ detection


def test_whole_detection_model_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "torchvision:fasterrcnn_resnet50_fpn"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "Traceback" not in err
    assert err.startswith("graphprune: error: cannot prune 'torchvision:fasterrcnn_resnet50_fpn' whole")
    assert err.endswith("e.g. --submodule backbone")


def _check_backbone(name: str, size: int | None) -> None:
    part, inputs = load(f"torchvision:{name}", input_size=size, submodule="backbone")
    fixed = tv.FIXED_SIZE.get(name)
    flags = {} if fixed else {"min_size": size, "max_size": size}
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **flags)
    assert type(part) is type(model.backbone) and not part.training
    expected = fixed or size
    assert len(inputs) == 1 and inputs[0].shape == (1, 3, expected, expected)
    image = random_inputs((3, expected, expected))[0]  # the loader's image, through the model's own transform
    torch.testing.assert_close(inputs[0], model.transform([image])[0].tensors)


@pytest.mark.slow
@pytest.mark.parametrize("name", DETECTION if FULL else ["fasterrcnn_mobilenet_v3_large_320_fpn",
                                                          "ssdlite320_mobilenet_v3_large"])
def test_submodule_backbone_gets_the_image_its_model_gives_it(name: str) -> None:
    _check_backbone(name, None if name in tv.FIXED_SIZE else 64)


def test_submodule_errors_name_the_problem() -> None:
    spec = "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"
    with pytest.raises(UnknownModelError, match="has no submodule 'bakbone'; did you mean backbone"):
        load(spec, input_size=64, submodule="bakbone")
    with pytest.raises(InputError, match=r"submodule 'rpn' .* is called with \(ImageList, OrderedDict, NoneType\)"):
        load(spec, input_size=64, submodule="rpn")


def test_cli_inspects_segmentation_and_a_detection_backbone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "torchvision:lraspp_mobilenet_v3_large", "--input-size", "64"]) == 0
    assert "backbone.1.block.0.0.weight[0]" in capsys.readouterr().out
    assert main(["inspect", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "--submodule", "backbone",
                 "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "channel groups of torchvision:fasterrcnn_mobilenet_v3_large_320_fpn" in out and "body." in out


# ------------------------------------------------------------------------------------ any model

PARTS = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.features = nn.Sequential(nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        return self.head(self.features(self.stem(x)))


def make():
    net = Net()
    net.example_input_shape = (1, 3, 20, 20)
    return net
"""


def test_cli_compiles_a_submodule_on_the_inputs_it_gets(tmp_path: Path) -> None:
    path = tmp_path / "parts.py"
    path.write_text(PARTS)
    out, report = tmp_path / "features.pt", tmp_path / "r.json"
    assert main(["compile", f"{path}:make", "--submodule", "features", "--sparsity", "0.5", "--out", str(out),
                 "--report", str(report), "-q"]) == 0
    part, (x,) = load(f"{path}:make", submodule="features")
    assert x.shape == (1, 8, 18, 18)  # the stem's output, not the model's input
    module = torch.load(out, weights_only=False)
    assert module(x).shape == part(x).shape == (1, 8, 14, 14)
    data = json.loads(report.read_text())
    assert data["params_after"] < data["params_before"] == sum(p.numel() for p in part.parameters())
