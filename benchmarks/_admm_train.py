"""The StructADMM benchmark's budget, training loop, accuracy and compression matching (benchmarks/admm.py).

Every method trains with ``train``: SGD (momentum 0.9, weight decay 5e-4), one cosine schedule over its
epochs, the batches of ``batches.epoch(e)``; ``masks`` (fqn -> bool) are applied to the gradients and
re-applied after every step, so mask-level zeros stay zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from graphprune.admm import projections
from graphprune.admm.constraints import weight_names
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from passes import AnalyzeChannels, Canonicalize, Trace


@dataclass(frozen=True)
class Budget:
    dense_epochs: int = 30
    budget: int = 20  # epochs every method gets after the dense model
    admm_epochs: int = 8  # admm: W-step epochs (one Z/U update each); the rest is retraining
    rho: float = 0.03  # chosen on a validation split of the training set (docs/admm.md)
    rho_growth: float = 1.3
    progressive: tuple[float, ...] = (0.5,)  # admm: intermediate conv compressions as fractions of the target
    structure: str = "group"  # admm: the ADMM set
    purify_eta: float = 0.5  # admm: purification thresholds (P-RM); the ablation admm-nopurify skips P-RM
    purify_sigma: float = 0.05
    prm_epochs: int = 2  # admm: retraining after P-RM, out of the budget
    lr_dense: float = 0.05
    lr: float = 0.01  # every method's learning rate after the dense model (--tune picks it on validation)
    tp_reg: float = 5e-4
    batch_size: int = 64


def cosine(steps: int):
    return lambda opt, n=None: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(n or steps, 1))


def train(model: nn.Module, batches, epochs: int, lr: float, seed: int, after_backward=None,
          masks: Mapping[str, torch.Tensor] | None = None, on_epoch: Callable[[int], None] | None = None) -> None:
    """SGD(momentum 0.9, wd 5e-4), cosine schedule, ``batches.epoch(e)`` order; ``on_epoch(e)`` runs before
    epoch e (it may change ``masks`` in place)."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * len(batches)))
    params = dict(model.named_parameters())
    model.train()
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        for x, y in batches.epoch(1000 * seed + epoch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if after_backward is not None:
                after_backward(model)
            opt.step()
            sched.step()
            with torch.no_grad():
                for n, m in (masks or {}).items():
                    params[n].mul_(m)
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, batches) -> float:
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


def analysed(model: nn.Module, inputs: tuple, sparsity: float = 0.5) -> CompileState:
    state = CompileState(type(model).__name__, model, inputs, Options(sparsity=sparsity))
    return run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])


def sparsity_for(state: CompileState, ratio: float) -> float:
    """Uniform channel sparsity whose group projection keeps ~1/ratio of the conv weights."""
    params = dict(state.gm.named_parameters())
    convs = {n: params[n].detach() for n in weight_names(state.gm) if params[n].ndim > 2}
    dense = sum(t.numel() for t in convs.values())
    labels = int(state.channels.labels.max()) + 1

    def compression(s: float) -> float:
        proj = projections.project_groups(convs, state.channels.groups, labels, s)
        return dense / sum(int(m.sum()) for m in proj.masks.values())

    lo, hi = 0.0, 0.99
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if compression(mid) < ratio else (lo, mid)
    return hi
