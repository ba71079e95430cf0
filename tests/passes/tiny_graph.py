"""The tiny hand-built graphs of the pass tests (``conftest.py`` builds a fixture per pipeline stage on
``Tiny``): conv -> bn -> relu -> channel shuffle -> conv and its example input, a one-hidden-layer MLP
whose path scores have closed forms, and the hand computations the scoring passes are checked against."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from graphprune.channels.groups import PruningGroup
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from passes import AnalyzeChannels, Canonicalize, Trace


class Tiny(nn.Module):
    """conv -> bn -> relu -> channel shuffle (view/transpose/view) -> conv: 5 interesting nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv1(x)))
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.conv2(y)


X = torch.randn(2, 3, 6, 6)


def tiny_batches(count: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Labelled batches for ``Tiny``: its output is (N, 4, 6, 6), so every pixel is a 4-class target."""
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(3, 3, 6, 6, generator=g), torch.randint(0, 4, (3, 6, 6), generator=g))
            for _ in range(count)]


def hidden(state: CompileState) -> PruningGroup:
    """The one prunable group: conv1's filters, bn, and conv2's input columns (in shuffled order)."""
    (group,) = [g for g in state.channels.groups if g.num_prunable]
    return group


def member_sums(group: PruningGroup, weight_scores: dict[str, torch.Tensor]) -> np.ndarray:
    """A channel's score by hand: over the group's members that have weight scores, the sum of the
    member's slice for that channel (conv2's columns carry the channels in the shuffle's order)."""
    total = np.zeros(group.size)
    for m in group.members:
        if m.fqn in weight_scores:
            for i, channel in enumerate(m.channel):
                total[int(channel)] += float(weight_scores[m.fqn].select(m.dim, i).sum())
    return total


def mlp_state(data: list | None = None, sparsity: float = 0.5) -> CompileState:
    """Linear(4, 6) -> ReLU -> Linear(6, 3) on a batch-1 example, traced and analysed."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    state = CompileState("mlp", net, (torch.randn(1, 4),), Options(sparsity=sparsity), data=data)
    return run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])


def hand_gradients(model: nn.Module, batches: list, names: list[str]) -> list[dict[str, torch.Tensor]]:
    """dL/dw of the cross-entropy for each batch, by plain backward on the model itself (eval mode)."""
    out = []
    for x, y in batches:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        out.append({n: model.get_parameter(n).grad.detach().double().clone() for n in names})
    model.zero_grad()
    return out
