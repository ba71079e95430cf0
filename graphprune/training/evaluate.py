"""Accuracy of a model on (input, target) batches, without changing the model.

Why its own function: the dense model is the user's, so evaluating it must leave every submodule's
``training`` flag as it was and write nothing (``torch.no_grad``, eval mode restored afterwards).
Accuracy counts every target element (one per image for classification, one per pixel for a
``[N, C, H, W]`` output against ``[N, H, W]`` targets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from graphprune.errors import InputError
from graphprune.latency import eval_mode
from graphprune.training.spec import forward, to_device


def evaluate(model: nn.Module, batches: Iterable[Any], loss_fn: Callable[[Any, Any], torch.Tensor] = F.cross_entropy,
             device: torch.device | None = None) -> dict[str, float]:
    """{"acc", "loss", "examples"} of ``model`` over ``batches`` (on ``device``, default the model's)."""
    device = device or next((p.device for p in model.parameters()), torch.device("cpu"))
    loss = correct = elements = examples = 0.0
    with eval_mode([model]), torch.no_grad():
        for inputs, target in batches:
            inputs, target = to_device(inputs, device), to_device(target, device)
            out = forward(model, inputs)
            if not isinstance(out, torch.Tensor) or out.ndim < 2 or target.shape != out.shape[:1] + out.shape[2:]:
                raise InputError(f"accuracy: the model returns {_describe(out)} for targets of shape "
                                 f"{list(target.shape)}; expected class logits [batch, classes, ...]")
            loss += float(loss_fn(out, target)) * len(target)
            correct += float((out.argmax(1) == target).sum())
            elements += target.numel()
            examples += len(target)
    if not examples:
        raise InputError("accuracy: the validation data yields no example")
    return {"acc": correct / elements, "loss": loss / examples, "examples": int(examples)}


def _describe(out: Any) -> str:
    return f"a tensor of shape {list(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
