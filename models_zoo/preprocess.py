"""The preprocessing an image model expects, for ``imagefolder:DIR`` data.

Why it must come from the model: a pruned model is scored and recovered on the data it was trained
on, and the same image normalised two ways is two different inputs. Models are built with random
weights (nothing is downloaded), so torchvision's per-weights ``transforms()`` is not what the user's
weights saw either. What is used, in order:

1. timm's data config when the model declares one (``model.pretrained_cfg``: any ``timm:`` model):
   ``timm.data.resolve_data_config`` at the example input's size, then timm's eval transform (resize
   by ``crop_pct``, centre crop, the model's mean/std);
2. otherwise: resize to the example input's height x width (bilinear, antialiased), then ImageNet
   normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225; their averages for a 1-channel
   model, whose images are converted to greyscale).

No augmentation: the same transform is used for training and validation. For other preprocessing,
give a ``file.py:factory`` returning the datasets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def image_transform(model: nn.Module, example_inputs: tuple[Any, ...], what: str) -> tuple[Callable, dict[str, Any]]:
    """(transform from a PIL image to the model's input tensor, a JSON-able description of it)."""
    x = example_inputs[0] if len(example_inputs) == 1 else None
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise InputError(f"data '{what}': image folders need a model taking one NCHW image tensor")
    channels, height, width = (int(d) for d in x.shape[1:])
    if getattr(model, "pretrained_cfg", None):
        timm_transform = _timm(model, (channels, height, width))
        if timm_transform is not None:
            return timm_transform
    return _default(channels, height, width, what)


def _timm(model: nn.Module, size: tuple[int, int, int]) -> tuple[Callable, dict[str, Any]] | None:
    try:
        from timm.data import create_transform, resolve_data_config
    except ImportError:
        return None
    config = resolve_data_config({"input_size": size}, model=model)
    transform = create_transform(**config, is_training=False)
    record = {"from": "timm data config", **{k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}}
    return transform, record


def _default(channels: int, height: int, width: int, what: str) -> tuple[Callable, dict[str, Any]]:
    from torchvision import transforms as T

    if channels == 3:
        mean, std, steps = IMAGENET_MEAN, IMAGENET_STD, []
    elif channels == 1:
        mean, std = (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
        steps = [T.Grayscale(num_output_channels=1)]
    else:
        raise InputError(f"data '{what}': the model takes {channels}-channel images; an image folder gives RGB or "
                         "greyscale: give a file.py:factory returning the dataset")
    transform = T.Compose([*steps, T.Resize((height, width), antialias=True), T.ToTensor(), T.Normalize(mean, std)])
    record = {"from": "default (resize to the example input, ImageNet normalisation)",
              "input_size": [channels, height, width], "mean": [round(m, 4) for m in mean],
              "std": [round(s, 4) for s in std]}
    return transform, record
