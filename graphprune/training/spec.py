"""What the user brings to a training run: data, loss, optimizer, and optional evaluation and hooks.

Not a framework: the user keeps their model, loss function and optimizer class; graphprune calls
``optimizer(params)`` to build a fresh optimizer for every phase (ADMM, retraining, each progressive
step), so momentum from before a hard prune never moves a pruned weight. A batch is
``(input, target)``; a tuple/list input is unpacked into the model's positional arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import graphprune.ops  # noqa: F401  (fills the op table: which modules keep running statistics)
from graphprune.ops.registry import Trait, has_trait

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], Any]  # (optimizer, steps in the phase)
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass(frozen=True)
class StepInfo:
    """Passed to ``on_step`` after every optimizer step."""

    step: int  # global steps done
    stage: int  # progressive step index
    phase: str  # "admm" or "retrain"
    loss: float  # this rank's data loss of the step


@dataclass(frozen=True)
class TrainSpec:
    data: Any  # DataLoader, Dataset (+ batch_size), or sized sequence of (input, target) batches
    loss_fn: Callable[[Any, Any], torch.Tensor] = F.cross_entropy
    optimizer: OptimizerFactory | None = None  # None: SGD with the config's lr / momentum / weight decay
    scheduler: SchedulerFactory | None = None  # stepped once per training step
    eval_fn: EvalFn | None = None  # called on the main rank with the (unwrapped) model in eval mode
    on_step: Callable[[StepInfo], None] | None = None
    batch_size: int | None = None  # global batch for a Dataset source


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def forward(model: nn.Module, inputs: Any) -> Any:
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def batch_accuracy(output: Any, target: Any) -> float | None:
    """Top-1 accuracy when the output is class logits and the target class indices; else None."""
    if (isinstance(output, torch.Tensor) and isinstance(target, torch.Tensor) and output.ndim == 2
            and target.ndim == 1 and not target.is_floating_point() and len(output) == len(target)):
        return float((output.argmax(1) == target).float().mean())
    return None


def accuracy_eval(batches: Iterable[Any], loss_fn: Callable[[Any, Any], torch.Tensor] = F.cross_entropy) -> EvalFn:
    """An ``eval_fn``: mean loss and top-1 accuracy over ``batches`` of (input, target)."""

    @torch.no_grad()
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        loss = correct = count = 0.0
        for inputs, target in batches:
            inputs, target = to_device(inputs, device), to_device(target, device)
            out = forward(model, inputs)
            loss += float(loss_fn(out, target)) * len(target)
            correct += float((out.argmax(1) == target).sum())
            count += len(target)
        return {"loss": loss / max(count, 1), "acc": correct / max(count, 1)}

    return evaluate


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], count: int, device: torch.device) -> int:
    """Recompute every BatchNorm's running statistics as the plain average over ``count`` batches (train-mode
    forward, no gradient). Why: removing channels changes what every later norm sees, and running statistics
    of the dense model then mis-normalise the pruned one in eval mode (compounding with depth) until
    training has replaced them. Returns the number of batches used."""
    norms = [m for m in model.modules() if has_trait(m, Trait.RUNNING_STATS) and m.track_running_stats]
    if not norms or count <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    used = 0
    for batch in batches:
        inputs, _ = to_device(batch, device)
        forward(model, inputs)
        used += 1
        if used >= count:
            break
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return used
