"""Optimizers and learning-rate schedules a plan names: ``sgd`` / ``adam`` / ``adamw``, ``cosine`` /
``constant``.

Defaults per optimizer, because one number does not suit all three: SGD lr 0.01, momentum 0.9,
weight decay 5e-4 (the CIFAR fine-tuning recipe); Adam lr 1e-3, no weight decay; AdamW lr 1e-3,
weight decay 0.01 (torch's). ``cosine`` anneals from lr to 0 over the run's steps, stepped once per
step, so a resumed run continues the same curve (its state is in the checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.01}


def check(where: str, optimizer: str, schedule: str, lr: float | None, weight_decay: float | None) -> None:
    """Refuse an unknown name or a non-positive rate, naming the key (``where``: ``finetune``)."""
    if optimizer not in OPTIMIZERS:
        raise InputError(f"{where}.optimizer: expected one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise InputError(f"{where}.schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if lr is not None and (not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0):
        raise InputError(f"{where}.lr: expected a positive number, got {lr!r}")
    if weight_decay is not None and (not isinstance(weight_decay, (int, float)) or weight_decay < 0):
        raise InputError(f"{where}.weight_decay: expected a number >= 0, got {weight_decay!r}")


def resolved(optimizer: str, lr: float | None, weight_decay: float | None) -> tuple[float, float]:
    """(lr, weight decay) with the optimizer's defaults filled in."""
    return (float(DEFAULT_LR[optimizer] if lr is None else lr),
            float(DEFAULT_WEIGHT_DECAY[optimizer] if weight_decay is None else weight_decay))


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def make_schedule(name: str, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    """A scheduler stepped once per training step, or None for a constant rate."""
    if name == "constant" or steps <= 0:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
