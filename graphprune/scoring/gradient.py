"""Loss-gradient criteria on data: SNIP, GraSP and first-order Taylor.

Each runs on a private copy of the model (eval mode by default, so BatchNorm is the same fixed
affine map the path criteria use; ``train=True`` uses batch statistics, updating only the copy)
with the scored weights substituted by masked copies through ``functional_call``: a masked weight
is zero in the forward, as in the pruned network.

- SNIP (Lee et al. 2019): ``|theta * dL/dtheta|`` with the gradient summed over ``batches``;
  the sensitivity of the loss to each weight's mask at ``c = 1``.
- GraSP (Wang et al. 2020): ``theta * (H g)`` with ``g`` the (stopped) loss gradient and ``H`` the
  Hessian, on logits divided by ``temperature`` (200 as in the reference code). Signed: a high
  score means removing the weight would shrink the gradient flow the most, so it is kept.
- Taylor (Molchanov et al. 2019, per-parameter form): ``mean over batches of (theta * dL/dtheta)**2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from graphprune.scoring.copies import untied
from graphprune.scoring.targets import Masks, Scores, masked_values, private_copy, take

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _setup(model: nn.Module, masks: Masks | None, train: bool) -> tuple[nn.Module, Scores, Scores]:
    net = private_copy(model, train)
    theta = masked_values(net, masks)
    leaves = {n: t.clone().requires_grad_() for n, t in theta.items()}
    return net, theta, leaves


def _grads(net: nn.Module, leaves: Scores, x: torch.Tensor, y: torch.Tensor, loss: Loss,
           temperature: float = 1.0, create_graph: bool = False) -> list[torch.Tensor]:
    out = functional_call(net, untied(net, leaves), (x,))
    value = loss(out / temperature, y)
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True, create_graph=create_graph)
    return [g if g is not None else torch.zeros_like(w) for g, w in zip(grads, leaves.values())]


def snip_scores(model: nn.Module, data: Iterable[Any], masks: Masks | None = None, *, batches: int = 1,
                loss: Loss = F.cross_entropy, train: bool = False) -> Scores:
    net, theta, leaves = _setup(model, masks, train)
    total = [torch.zeros_like(w) for w in leaves.values()]
    for x, y in take(data, batches):
        total = [a + g for a, g in zip(total, _grads(net, leaves, x, y, loss))]
    return {n: (theta[n] * g).abs() for n, g in zip(leaves, total)}


def taylor_scores(model: nn.Module, data: Iterable[Any], masks: Masks | None = None, *, batches: int = 1,
                  loss: Loss = F.cross_entropy, train: bool = False) -> Scores:
    net, theta, leaves = _setup(model, masks, train)
    used = take(data, batches)
    total = [torch.zeros_like(w) for w in leaves.values()]
    for x, y in used:
        total = [a + (theta[n] * g) ** 2 for a, n, g in zip(total, leaves, _grads(net, leaves, x, y, loss))]
    return {n: a / len(used) for n, a in zip(leaves, total)}


def grasp_scores(model: nn.Module, data: Iterable[Any], masks: Masks | None = None, *, batches: int = 1,
                 temperature: float = 200.0, loss: Loss = F.cross_entropy, train: bool = False) -> Scores:
    net, theta, leaves = _setup(model, masks, train)
    used = take(data, batches)
    stopped = [torch.zeros_like(w) for w in leaves.values()]
    for x, y in used:
        stopped = [a + g.detach() for a, g in zip(stopped, _grads(net, leaves, x, y, loss, temperature))]
    hg = [torch.zeros_like(w) for w in leaves.values()]
    for x, y in used:
        grads = _grads(net, leaves, x, y, loss, temperature, create_graph=True)
        z = sum((g * s).sum() for g, s in zip(grads, stopped))
        second = torch.autograd.grad(z, list(leaves.values()), allow_unused=True)
        hg = [a + (h if h is not None else 0) for a, h in zip(hg, second)]
    return {n: theta[n] * h for n, h in zip(leaves, hg)}
