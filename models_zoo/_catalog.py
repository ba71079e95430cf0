"""The list of in-repo models and a description of the external namespaces.

Why: the CLI's ``graphprune zoo`` and the test-suite both need one authoritative table of what
``zoo:NAME`` resolves to, with the input shape and class count each model expects, without having
to build the models. The table names each factory as text and imports its module only to build the
model, so reading the catalog (and checking a ``zoo:`` name) imports no torch. External namespaces
are summarised here (not enumerated): torchvision and timm are optional dependencies and timm alone
lists well over a thousand architectures; ``models_zoo._listing`` lists their names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from models_zoo._common import ImageInputs

    Factory = Callable[..., tuple[nn.Module, ImageInputs]]

ZOO_PREFIX = "zoo"
CIFAR_INPUT = (1, 3, 32, 32)


@dataclass(frozen=True)
class ZooEntry:
    """One in-repo model: its spec (``zoo:NAME``), what it stresses, and its example input shape."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int = 10


@dataclass(frozen=True)
class ZooSource:
    """An external model namespace: its spec prefix, what it is, and how many models it offers.

    ``count`` is ``None`` when the backing package is not installed.
    """

    prefix: str
    description: str
    count: int | None
    example: str


# name -> (module:function under models_zoo, description); the module is imported when the model is built
_FACTORIES: dict[str, tuple[str, str]] = {
    "resnet20": ("resnet:resnet20", "CIFAR ResNet-20, BasicBlocks, 1x1 conv+BN projection shortcuts"),
    "resnet56": ("resnet:resnet56", "CIFAR ResNet-56, BasicBlocks, 1x1 conv+BN projection shortcuts"),
    "vgg11_bn": ("vgg:vgg11_bn", "CIFAR VGG-11-BN; classifier flattens a 512x2x2 map (flatten index maps)"),
    "densenet_tiny": (
        "densenet:densenet_tiny", "DenseNet-BC, 2 blocks, growth 12, nested torch.cat concatenations",
    ),
    "mobilenet_tiny": (
        "mobilenet:mobilenet_tiny",
        "MobileNetV2-style inverted residuals, SE, Hardswish, depthwise multiplier-2 conv",
    ),
    "shufflenet_tiny": (
        "shufflenet:shufflenet_tiny", "ShuffleNetV2-style chunk split, view-transpose-view shuffle, cat",
    ),
    "vit_tiny": ("vit:vit_tiny", "ViT dim 64, 4 heads, depth 2, hand-written qkv attention, cls token, pos embed"),
    "layerscale_net": (
        "convnext:layerscale_net",
        "ConvNeXt-like: dw7x7, channels-last LayerNorm/Linear via permute, loose layer-scale gamma",
    ),
    "gn_net": ("groupnorm:gn_net", "Residual CNN with GroupNorm(8) and groups=4 convs"),
    "small_cnn": (
        "small:small_cnn", "Plain 4-conv CNN, widths 16/32/32/64: the pruning-at-initialisation benchmark model",
    ),
    "plain_cnn": ("small:plain_cnn", "small_cnn without BatchNorm (conv-bias-ReLU): the BN-free PaI benchmark model"),
    "resnet8": ("small:resnet8", "CIFAR ResNet-8, one BasicBlock per stage: the small ResNet of the PaI benchmark"),
}


def zoo_names() -> list[str]:
    """Short names (without ``zoo:``) of the in-repo models, in catalog order."""
    return list(_FACTORIES)


def zoo_factory(name: str) -> Factory | None:
    """The factory behind ``zoo:NAME``, or ``None`` if there is no such model."""
    found = _FACTORIES.get(name)
    if found is None:
        return None
    module, _, function = found[0].partition(":")
    return getattr(importlib.import_module(f"models_zoo.{module}"), function)


def catalog() -> list[ZooEntry]:
    """Every in-repo model, in a stable order. Cheap: no model is built."""
    return [
        ZooEntry(name=f"{ZOO_PREFIX}:{name}", description=description, input_shape=CIFAR_INPUT)
        for name, (_, description) in _FACTORIES.items()
    ]


def _torchvision_count() -> int | None:
    try:
        import torchvision
    except ImportError:
        return None
    from models_zoo._torchvision import names

    return len(names(torchvision))


def _timm_count() -> int | None:
    try:
        import timm
    except ImportError:
        return None
    return len(timm.list_models())


def catalog_sources() -> list[ZooSource]:
    """The ``torchvision:`` and ``timm:`` namespaces with their model counts (randomly initialised)."""
    install_hint = " (not installed: pip install 'graphprune[zoo]')"
    tv_count, timm_count = _torchvision_count(), _timm_count()
    return [
        ZooSource(
            prefix="torchvision:",
            description="torchvision classification, segmentation and video models, and detection models by part "
            "(--submodule backbone), weights=None"
            + (install_hint if tv_count is None else ""),
            count=tv_count,
            example="torchvision:resnet18",
        ),
        ZooSource(
            prefix="timm:",
            description="timm models, pretrained=False; input size from pretrained_cfg"
            + (install_hint if timm_count is None else ""),
            count=timm_count,
            example="timm:resnet18",
        ),
    ]
