"""Feature distillation: the pruned model's per-channel-norm outputs matched to the dense model's, sliced
to the channels the pruned model kept.

Where: every per-channel norm (BatchNorm, GroupNorm: ``Trait.PER_CHANNEL_NORM``) that sits at the same
module path in both models. Each such norm closes a channel space of a pruning group (a group's every
producer is followed by one in a conv net, a residual stage's blocks each end in one), so the points are
the group boundaries graphprune removed channels at, in every group, without naming a model. The
norm's output is the normalised feature, so the squared errors of all points share one scale.

Target: removal only deletes channels (``state.kept`` lists, per tensor, the dense indices it kept), so
the student's channel ``j`` at a point *is* the dense channel ``kept[j]``; the dense feature indexed by
the kept channels is the target, with no projection to learn. Why no learned projection (FitNets): the
correspondence is known exactly, and a projection would let the student match a rotated feature
instead of the dense one; what is matched is what the channel-pruning reconstruction methods (He et
al. 2017, ThiNet) fit layer by layer, here jointly and end to end.

Loss: the mean over points of the mean squared error; the dense features are computed under
``no_grad``. Hooks live only for the duration of one forward (``capture``): neither model keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import graphprune.ops  # noqa: F401  (fills the op table: which modules are per-channel norms)
from graphprune.errors import InputError
from graphprune.ops.registry import Trait, has_trait


@dataclass(frozen=True)
class FeaturePoint:
    path: str  # the module's path, the same in both models
    kept: torch.Tensor | None  # dense channels the pruned model kept, in order (None: all of them)


def feature_points(student: nn.Module, teacher: nn.Module,
                   kept: Mapping[str, Mapping[int, Sequence[int]]]) -> list[FeaturePoint]:
    """The per-channel norms at the same path in both models, with the dense channels each kept
    (from the norm's own parameters' or buffers' ``kept`` rows). Refused when there is none."""
    dense = dict(teacher.named_modules())
    points = []
    for path, module in student.named_modules():
        if not path or not has_trait(module, Trait.PER_CHANNEL_NORM) or type(dense.get(path)) is not type(module):
            continue
        rows = next((kept[f"{path}.{name}"][0] for name in ("weight", "bias", "running_mean")
                     if 0 in kept.get(f"{path}.{name}", {})), None)
        points.append(FeaturePoint(path, None if rows is None else torch.as_tensor(rows, dtype=torch.long)))
    if not points:
        raise InputError("finetune.distill = 'features': no per-channel norm (BatchNorm, GroupNorm) sits at the "
                         "same path in the pruned and the dense model; use distill = 'logits'")
    return points


@contextmanager
def capture(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward of ``model`` records the output of the modules at ``paths``."""
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[p].register_forward_hook(_recorder(outputs, p)) for p in paths]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def _recorder(outputs: dict[str, torch.Tensor], path: str):
    """A hook recording its module's output under ``path`` (each copy-on-write copy of a module has its
    own hook table: ``graphprune.trace.own_containers``, so the dense model's hooks stay its own)."""
    def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
        outputs[path] = output
    return hook


def feature_loss(points: Sequence[FeaturePoint], student: Mapping[str, torch.Tensor],
                 teacher: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean over ``points`` of MSE(student feature, dense feature at the kept channels)."""
    losses = []
    for p in points:
        s, t = student[p.path], teacher[p.path].detach()
        if p.kept is not None:
            t = t.index_select(1, p.kept.to(t.device))
        if s.shape != t.shape:
            raise InputError(f"finetune.distill = 'features': {p.path} gives {list(s.shape)} in the pruned model "
                             f"but its kept dense channels are {list(t.shape)}")
        losses.append(F.mse_loss(s, t))
    return torch.stack(losses).mean()
