"""Data-free criteria on the weights themselves: random, magnitude, BatchNorm scale and FPGM.

- random: i.i.d. uniform scores from a seeded generator (the baseline every criterion must beat).
- magnitude: ``|theta|`` (p=1) or ``theta**2`` (p=2); summed over a channel these are its L1 norm and
  squared L2 norm.
- BN-scale (network slimming, Liu et al. 2017): a channel-level criterion, ``|gamma_c|`` of the
  BatchNorm that directly follows the conv/linear, broadcast to every weight of filter ``c``. A
  layer not followed by a BatchNorm falls back to the mean ``|theta|`` of each filter.
- FPGM (He et al. 2019): filter-level. A filter close to the geometric median of its layer's
  filters is replaceable by the others, so filter ``i`` scores ``||w_i - GM||`` (``approximate``:
  the paper's practical form, the summed distance to all other filters), broadcast to its weights.

Channel-level criteria give whole-filter scores; their structured aggregation reads the output-dim
members only (see ``graphprune.scoring.aggregate``).
"""

from __future__ import annotations

import torch
from torch import nn

from graphprune.ops.registry import Trait, has_trait
from graphprune.scoring.copies import to_graph
from graphprune.scoring.targets import Masks, Scores, masked_values, scored_modules


def random_scores(model: nn.Module, seed: int = 0) -> Scores:
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(w.shape, generator=gen, dtype=torch.float64)
            for n, w in sorted(masked_values(model, None).items())}


def magnitude_scores(model: nn.Module, masks: Masks | None = None, p: int = 1) -> Scores:
    return {n: w.double().abs() ** p for n, w in masked_values(model, masks).items()}


def _broadcast(per_filter: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return per_filter.reshape(-1, *([1] * (weight.ndim - 1))).expand(weight.shape).clone()


def bn_scale_scores(model: nn.Module, masks: Masks | None = None) -> Scores:
    gm = to_graph(model)
    following: dict[str, torch.Tensor] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or not node.args or getattr(node.args[0], "op", None) != "call_module":
            continue
        norm = gm.get_submodule(str(node.target))
        if has_trait(norm, Trait.RUNNING_STATS) and norm.weight is not None:  # a batch norm's gamma
            following[str(node.args[0].target)] = norm.weight.detach().double().abs()
    values = masked_values(model, masks)
    out = {}
    for name in scored_modules(model):
        fqn = f"{name}.weight" if name else "weight"
        w = values[fqn].double()
        gamma = following.get(name)
        if gamma is None or gamma.numel() != w.shape[0]:
            gamma = w.abs().flatten(1).mean(1)
        out[fqn] = _broadcast(gamma, w)
    return out


def geometric_median(points: torch.Tensor, iterations: int = 500, tol: float = 1e-12) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the summed Euclidean distance to ``points`` (rows)."""
    x = points.double()
    y = x.mean(0)
    for _ in range(iterations):
        d = torch.linalg.vector_norm(x - y, dim=1)
        if bool((d < tol).any()):  # at a data point: Weiszfeld's fixed point, stop
            break
        w = 1.0 / d
        new = (w[:, None] * x).sum(0) / w.sum()
        if float(torch.linalg.vector_norm(new - y)) < tol:
            return new
        y = new
    return y


def fpgm_scores(model: nn.Module, masks: Masks | None = None, approximate: bool = False) -> Scores:
    out = {}
    for n, w in masked_values(model, masks).items():
        rows = w.double().flatten(1)
        if approximate:
            per_filter = torch.cdist(rows, rows).sum(1)
        else:
            per_filter = torch.linalg.vector_norm(rows - geometric_median(rows), dim=1)
        out[n] = _broadcast(per_filter, w)
    return out
