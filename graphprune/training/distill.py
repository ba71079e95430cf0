"""Knowledge distillation from the dense model's logits (Hinton et al. 2015).

loss = (1 - w) * task_loss(student, target) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))

``T`` (temperature) softens both distributions so the student learns how the teacher ranks the wrong
classes too; the T^2 factor keeps the soft term's gradient scale independent of T. Logits are the last
dimension of a tensor output (classification ``[N, C]``; also ``[N, C, ...]`` maps after moving C
last, as dense prediction heads give them). Feature distillation: ``graphprune.training.features``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from graphprune.errors import InputError


def logits_of(output: Any, who: str) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.ndim < 2:
        found = (f"a tensor of shape {list(output.shape)}" if isinstance(output, torch.Tensor)
                 else type(output).__name__)
        raise InputError(f"finetune.distill: the {who} model returns {found}; logits distillation needs a float "
                         "tensor of class logits [batch, classes, ...]")
    return output.movedim(1, -1).reshape(-1, output.shape[1]) if output.ndim > 2 else output


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) on temperature-softened logits, averaged over rows."""
    t = temperature
    log_p = F.log_softmax(logits_of(student, "pruned") / t, dim=-1)
    q = F.log_softmax(logits_of(teacher, "dense").detach() / t, dim=-1)
    return F.kl_div(log_p, q, log_target=True, reduction="batchmean") * (t * t)


def distillation_loss(task_loss: Callable[[Any, Any], torch.Tensor], student: Any, teacher: Any, target: Any,
                      temperature: float, weight: float) -> torch.Tensor:
    soft = soft_loss(student, teacher, temperature)
    if weight >= 1:
        return soft
    return (1 - weight) * task_loss(student, target) + weight * soft
