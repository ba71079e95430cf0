"""``torchvision:NAME``: classification, segmentation, video and detection models, weights=None.

Why one table per family: each family needs its own example input (an image, a clip, a list of
images), its own constructor flags (no pretrained backbone download, plain-tensor outputs), and some
cannot be pruned whole. A detection model takes a list of images and returns per-image detections;
it is loaded so that a part of it can be selected (``--submodule backbone``), its inputs captured on
the way (``models_zoo._submodule``): built for ``input_size`` images (default 224) so the backbone sees
``1x3xSxS`` rather than the 800-pixel resize of the detection defaults. Video models take
``1x3x16xSxS`` clips (S = 112 for the ResNet-3D family, 224 for the others). Models whose builder
fixes the input size (SSD, MViT) refuse another ``input_size`` instead of ignoring it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from torch import nn

from graphprune.errors import InputError, UnknownModelError
from models_zoo._common import random_inputs, seeded
from models_zoo._suggest import LIST_HINT
from models_zoo._suggest import unknown as unknown_name

DEFAULT_IMAGE_SHAPE = (1, 3, 224, 224)
# classifiers whose architecture (with weights=None) needs another default input size
TORCHVISION_INPUT_SIZE = {"inception_v3": 299}
# Constructor flags so forward returns a plain tensor and init is cheap and warning-free.
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}
# Architectures built for one image size: the constructor argument that sets it.
TORCHVISION_SIZE_KWARG = {"vit_": "image_size", "maxvit_": "input_size"}
VIDEO_FRAMES = 16
VIDEO_SIZE = {"r3d_18": 112, "mc3_18": 112, "r2plus1d_18": 112}  # the rest: 224 (s3d needs >= 224)
# Built for one input size that the builder does not let us change.
FIXED_SIZE = {"ssd300_vgg16": 300, "ssdlite320_mobilenet_v3_large": 320, "mvit_v1_b": 224, "mvit_v2_s": 224}
DETECTION_HINT = "--submodule backbone"


@dataclass(frozen=True)
class Family:
    name: str  # for messages
    module: str  # attribute of torchvision.models holding the family ("" = torchvision.models itself)
    whole: bool = True  # can be pruned as a whole model


FAMILIES = (Family("classification", ""), Family("segmentation", "segmentation"), Family("video", "video"),
            Family("detection", "detection", whole=False), Family("optical_flow", "optical_flow"))
UNSUPPORTED = ("quantization",)
FLOW_SIZE = 128  # RAFT's correlation pyramid needs feature maps of 16 at 1/8 scale: images of >= 128


def _models(torchvision: ModuleType, family: Family) -> list[str]:
    models = torchvision.models
    return models.list_models(module=getattr(models, family.module) if family.module else models)


def family_of(torchvision: ModuleType, name: str) -> Family | None:
    return next((f for f in FAMILIES if name in _models(torchvision, f)), None)


def names(torchvision: ModuleType) -> list[str]:
    """Every model the namespace loads, in family order."""
    return [n for family in FAMILIES for n in _models(torchvision, family)]


def by_family(torchvision: ModuleType) -> list[tuple[Family, str]]:
    """Every model the namespace loads with its family, from the registry (nothing is built)."""
    return [(family, n) for family in FAMILIES for n in _models(torchvision, family)]


def input_shape(family: Family, name: str, input_size: int | None = None) -> tuple[int, ...]:
    """The shape of the example input ``name`` is loaded with (detection: one image, given in a list)."""
    size = input_size or FIXED_SIZE.get(name)
    if family.name == "detection":
        size = size or DEFAULT_IMAGE_SHAPE[-1]
        return (3, size, size)
    if family.name == "video":
        size = size or VIDEO_SIZE.get(name, DEFAULT_IMAGE_SHAPE[-1])
        return (1, 3, VIDEO_FRAMES, size, size)
    if family.name == "optical_flow":  # a pair of images, the same shape
        return (1, 3, size or FLOW_SIZE, size or FLOW_SIZE)
    size = size or TORCHVISION_INPUT_SIZE.get(name, DEFAULT_IMAGE_SHAPE[-1])
    return (1, 3, size, size)


def whole_model_error(torchvision: ModuleType, name: str, spec: str) -> InputError | None:
    """The error for pruning ``name`` whole when its family cannot be, else None."""
    family = family_of(torchvision, name)
    if family is None or family.whole:
        return None
    return InputError(f"cannot prune '{spec}' whole: a {family.name} model takes a list of images and returns "
                      f"per-image detections; name the part to prune, e.g. {DETECTION_HINT}")


def _unknown(torchvision: ModuleType, name: str, spec: str) -> UnknownModelError:
    models = torchvision.models
    if name in models.list_models():  # a family we do not load (optical flow, quantized)
        return UnknownModelError(f"unsupported model '{spec}': torchvision {', '.join(UNSUPPORTED)} models are not "
                                 f"supported; use a {', '.join(f.name for f in FAMILIES)} model "
                                 f"({LIST_HINT})")
    return unknown_name(spec, "torchvision model", name, names(torchvision), "torchvision:")


def _size_kwargs(name: str, input_size: int | None) -> dict[str, Any]:
    if input_size is None:
        return {}
    for prefix, argument in TORCHVISION_SIZE_KWARG.items():
        if name.startswith(prefix):
            return {argument: input_size if argument == "image_size" else (input_size, input_size)}
    return {}


def _fixed_size(name: str, input_size: int | None, spec: str) -> int | None:
    """The size a fixed-size model is built for (refusing another ``input_size``), else ``input_size``."""
    fixed = FIXED_SIZE.get(name)
    if fixed is not None and input_size not in (None, fixed):
        raise InputError(f"input_size {input_size}: '{spec}' is built for {fixed}x{fixed} inputs")
    return fixed or input_size


def _build(torchvision: ModuleType, family: Family, name: str, spec: str,
           input_size: int | None) -> tuple[nn.Module, tuple[Any, ...]]:
    input_size = _fixed_size(name, input_size, spec)
    kwargs: dict[str, Any] = {**TORCHVISION_KWARGS.get(name, {}), **_size_kwargs(name, input_size)}
    if family.name in ("segmentation", "detection"):
        kwargs["weights_backbone"] = None  # the default downloads ImageNet weights
    if family.name == "detection" and name not in FIXED_SIZE:
        size = input_size or DEFAULT_IMAGE_SHAPE[-1]
        kwargs.update(min_size=size, max_size=size)  # the detection transform then keeps the image size
    with seeded():
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    inputs = random_inputs(input_shape(family, name, input_size))
    if family.name == "optical_flow":
        return model, (inputs[0], random_inputs(input_shape(family, name, input_size), seed=1)[0])
    return model, ([inputs[0]],) if family.name == "detection" else inputs


def load_torchvision(torchvision: ModuleType, name: str, spec: str,
                     input_size: int | None) -> tuple[nn.Module, tuple[Any, ...]]:
    """Build ``name`` with weights=None and its example inputs (for detection: ``([image],)``)."""
    family = family_of(torchvision, name)
    if family is None:
        raise _unknown(torchvision, name, spec)
    return _build(torchvision, family, name, spec, input_size)

