"""score-magnitude: per-channel L1/L2 magnitude of a group, summed over every parameter member.

A channel's score is the sum over the group's members (conv filters, the consumers' input columns,
norm affine parameters, layer-scale entries) of the p-norm of that channel's slice, so a channel is
judged by everything that removing it deletes. Buffers (running statistics) do not count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphprune.passes import Pass
from graphprune.state import CompileState


def slice_norms(tensor: torch.Tensor, dim: int, p: int) -> np.ndarray:
    flat = tensor.detach().float().movedim(dim, 0).reshape(tensor.shape[dim], -1)
    return flat.abs().sum(1).numpy() if p == 1 else flat.pow(2).sum(1).sqrt().numpy()


@dataclass(frozen=True)
class ScoreMagnitude(Pass):
    name = "score-magnitude"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:l1", "scores:l2"})
    p: int = 2

    def run(self, state: CompileState) -> CompileState:
        params = dict(state.gm.named_parameters())
        per_group = []
        for group in state.channels.groups:
            score = np.zeros(group.size, dtype=np.float64)
            for m in group.members:
                if m.fqn in params:
                    np.add.at(score, m.channel, slice_norms(params[m.fqn], m.dim, self.p))
            per_group.append(score)
        return state.with_(scores={**state.scores, f"l{self.p}": per_group})
