"""Training a benchmark's dense model: one loop for every benchmark that starts from a trained model.

Why shared: the recovery and statistics-rewrite benchmarks both train their dense model the same way
(a seeded pass over the task's shuffled batches, cross-entropy, a cosine schedule stepped per batch);
only the optimizer differs, so it is the caller's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def train_dense(model: nn.Module, task: Any, epochs: int, seed: int,
                optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]) -> nn.Module:
    """``model`` trained ``epochs`` epochs on ``task.train`` (batches seeded by ``seed``), in eval mode."""
    torch.manual_seed(seed)
    opt = optimizer(model.parameters())
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * len(task.train)))
    model.train()
    batches = dataclasses.replace(task.train, seed=seed)
    for epoch in range(epochs):
        for x, y in batches.epoch(epoch):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            schedule.step()
    return model.eval()
