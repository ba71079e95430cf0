"""The list of in-repo models and a description of the external namespaces.

Why: the CLI's ``graphprune zoo`` and the test-suite both need one authoritative table of what
``zoo:NAME`` resolves to, with the input shape and class count each model expects, without having
to build the models. External namespaces are summarised (not enumerated): torchvision and timm
are optional dependencies and timm alone lists well over a thousand architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models_zoo._common import ImageInputs
from models_zoo.convnext import layerscale_net
from models_zoo.densenet import densenet_tiny
from models_zoo.groupnorm import gn_net
from models_zoo.mobilenet import mobilenet_tiny
from models_zoo.resnet import resnet20, resnet56
from models_zoo.shufflenet import shufflenet_tiny
from models_zoo.small import resnet8, small_cnn
from models_zoo.vgg import vgg11_bn
from models_zoo.vit import vit_tiny

ZOO_PREFIX = "zoo"
Factory = Callable[..., tuple[nn.Module, ImageInputs]]
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


_FACTORIES: dict[str, tuple[Factory, str]] = {
    "resnet20": (resnet20, "CIFAR ResNet-20, BasicBlocks, 1x1 conv+BN projection shortcuts"),
    "resnet56": (resnet56, "CIFAR ResNet-56, BasicBlocks, 1x1 conv+BN projection shortcuts"),
    "vgg11_bn": (vgg11_bn, "CIFAR VGG-11-BN; classifier flattens a 512x2x2 map (flatten index maps)"),
    "densenet_tiny": (densenet_tiny, "DenseNet-BC, 2 blocks, growth 12, nested torch.cat concatenations"),
    "mobilenet_tiny": (
        mobilenet_tiny,
        "MobileNetV2-style inverted residuals, SE, Hardswish, depthwise multiplier-2 conv",
    ),
    "shufflenet_tiny": (shufflenet_tiny, "ShuffleNetV2-style chunk split, view-transpose-view shuffle, cat"),
    "vit_tiny": (vit_tiny, "ViT dim 64, 4 heads, depth 2, hand-written qkv attention, cls token, pos embed"),
    "layerscale_net": (
        layerscale_net,
        "ConvNeXt-like: dw7x7, channels-last LayerNorm/Linear via permute, loose layer-scale gamma",
    ),
    "gn_net": (gn_net, "Residual CNN with GroupNorm(8) and groups=4 convs"),
    "small_cnn": (small_cnn, "Plain 4-conv CNN, widths 16/32/32/64: the pruning-at-initialisation benchmark model"),
    "resnet8": (resnet8, "CIFAR ResNet-8, one BasicBlock per stage: the small ResNet of the PaI benchmark"),
}


def zoo_names() -> list[str]:
    """Short names (without ``zoo:``) of the in-repo models, in catalog order."""
    return list(_FACTORIES)


def zoo_factory(name: str) -> Factory | None:
    """The factory behind ``zoo:NAME``, or ``None`` if there is no such model."""
    found = _FACTORIES.get(name)
    return found[0] if found else None


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
