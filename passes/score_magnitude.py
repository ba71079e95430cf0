"""score-magnitude: per-channel L1/L2 magnitude of a group, summed over every parameter member.

A channel's score is the sum over the group's members (conv filters, the consumers' input columns,
norm affine parameters, layer-scale entries) of the p-norm of that channel's slice, so a channel is
judged by everything that removing it deletes. Buffers (running statistics) do not count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphprune import tensor_ops
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState


def slice_norms(tensor: torch.Tensor, dim: int, p: int) -> np.ndarray:
    """p-norm of every slice along ``dim`` (reduced over all other dims, no transposed copy)."""
    return member_norms(tensor, [dim], p)[dim]


def member_norms(tensor: torch.Tensor, dims: list[int], p: int) -> dict[int, np.ndarray]:
    """Slice norms along each of ``dims``, reduced in place over the other dims (in numpy, float64
    accumulation: see ``graphprune.tensor_ops`` for why not torch)."""
    return tensor_ops.slice_norms(tensor, dims, p)


@dataclass(frozen=True)
class ScoreMagnitude(Pass):
    name = "score-magnitude"
    requires = frozenset({"groups"})
    stage = Stage.SCORE
    p: int = 2

    @property
    def provides(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({f"scores:l{self.p}"})

    @classmethod
    def offers(cls) -> frozenset[str]:
        return frozenset({"scores:l1", "scores:l2"})

    @classmethod
    def for_fact(cls, fact: str) -> ScoreMagnitude | None:
        return {"scores:l1": cls(p=1), "scores:l2": cls(p=2)}.get(fact)

    def run(self, state: CompileState) -> CompileState:
        params = dict(state.gm.named_parameters())
        wanted: dict[str, list[int]] = {}
        for group in state.channels.groups:
            for m in group.members:
                if m.fqn in params:
                    wanted.setdefault(m.fqn, []).append(m.dim)
        jobs = list(wanted.items())
        results = tensor_ops.map_large(lambda job: member_norms(params[job[0]], job[1], self.p), jobs,
                                       lambda job: params[job[0]].numel())
        norms = {fqn: result for (fqn, _), result in zip(jobs, results)}
        per_group = []
        for group in state.channels.groups:
            score = np.zeros(group.size, dtype=np.float64)
            for m in group.members:
                if m.fqn in norms:
                    score += np.bincount(m.channel, weights=norms[m.fqn][m.dim], minlength=group.size)
            per_group.append(score)
        return state.with_(scores={**state.scores, f"l{self.p}": per_group})
