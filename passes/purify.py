"""purify: zero the nearly-dead filters and columns that pruning left behind (lossy, optional).

After ADMM or mask-level pruning many conv/linear filters (output rows) and columns (all weights
reading one input channel) keep only a few small weights. P-RM purification removes a filter or
column whose fraction already pruned (zero or masked off) is at least ``eta`` and whose remaining L2
norm is at most ``sigma``. Here purification zeroes them (weights, masks, a purified filter's bias and
the per-channel norm that directly follows it, so its output is exactly zero); ``remove-unused-paths``
then removes every channel that died completely, losslessly with respect to the purified model.
Default off: with neither threshold set the pass changes nothing. Parameters are replaced, never
written in place (they may still be the user's tensors), in a copy of the state's GraphModule
(``graphprune.copy_on_write``). ``artifacts["purify"]`` lists what it zeroed,
in the original (dense) numbering, and the conv census of its input (``census``: what P-RM started from)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from graphprune.conv_census import conv_census
from graphprune.copy_on_write import writable
from graphprune.ops.registry import Trait, has_trait
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState


def weak_slices(w: torch.Tensor, mask: torch.Tensor | None, dim: int, eta: float, sigma: float) -> torch.Tensor:
    """Bool per index along ``dim``: a surviving slice (some weight non-zero and unmasked) whose
    already-pruned fraction is >= eta and remaining L2 norm <= sigma."""
    live = (w != 0) if mask is None else (w != 0) & mask
    moved = live.transpose(0, dim).reshape(w.shape[dim], -1)
    pruned = 1.0 - moved.float().mean(1)
    norm = (w * live).transpose(0, dim).reshape(w.shape[dim], -1).norm(dim=1)
    return moved.any(1) & (pruned >= eta) & (norm <= sigma)


def _replace(module: nn.Module, attr: str, fn) -> None:
    old = getattr(module, attr, None)
    if isinstance(old, torch.Tensor):
        new = fn(old.detach().clone())
        setattr(module, attr, nn.Parameter(new, old.requires_grad) if isinstance(old, nn.Parameter) else new)


def _original(state: CompileState, fqn: str, dim: int, index: torch.Tensor) -> list[int]:
    kept = state.kept.get(fqn, {}).get(dim)
    return [kept[i] if kept is not None else i for i in index.tolist()]


def _following_norm(gm, node) -> nn.Module | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module":
        m = gm.get_submodule(str(users[0].target))
        return m if has_trait(m, Trait.PER_CHANNEL_NORM) else None
    return None


def _zero_rows(t: torch.Tensor, index: torch.Tensor, dim: int = 0) -> torch.Tensor:
    t.index_fill_(dim, index, 0)
    return t


@dataclass(frozen=True)
class Purify(Pass):
    name = "purify"
    requires = frozenset({"traced"})
    provides = frozenset({"purified"})
    invalidates = frozenset({"keep"})
    stage = Stage.PURIFY
    leaves_dead_channels = True  # it zeroes whole filters and columns
    eta: float | None = None  # fraction of a filter/column already pruned, at least (None: any)
    sigma: float | None = None  # remaining L2 norm, at most (None: any); both None: the pass is off

    def run(self, state: CompileState) -> CompileState:
        if self.eta is None and self.sigma is None:
            return state
        eta = 0.0 if self.eta is None else self.eta
        sigma = float("inf") if self.sigma is None else self.sigma
        gm, masks = writable(state.gm), dict(state.masks)
        filters: dict[str, list[int]] = {}
        columns: dict[str, list[int]] = {}
        for node in gm.graph.nodes:
            if node.op != "call_module" or not has_trait(m := gm.get_submodule(str(node.target)), Trait.FILTER_ROWS):
                continue
            fqn = f"{node.target}.weight"
            w, mask = m.weight.detach(), masks.get(fqn)
            rows = torch.nonzero(weak_slices(w, mask, 0, eta, sigma)).flatten()
            cols = torch.tensor([], dtype=torch.long)
            if getattr(m, "groups", 1) == 1:
                cols = torch.nonzero(weak_slices(w, mask, 1, eta, sigma)).flatten()
            if len(rows):
                _replace(m, "weight", lambda t, r=rows: _zero_rows(t, r))
                _replace(m, "bias", lambda t, r=rows: _zero_rows(t, r))
                norm = _following_norm(gm, node)
                if norm is not None:
                    for attr in ("weight", "bias"):
                        _replace(norm, attr, lambda t, r=rows: _zero_rows(t, r))
                filters[fqn] = _original(state, fqn, 0, rows)
            if len(cols):
                _replace(m, "weight", lambda t, c=cols: _zero_rows(t, c, 1))
                columns[fqn] = _original(state, fqn, 1, cols)
            for index, dim in ((rows, 0), (cols, 1)):
                if len(index) and isinstance(masks.get(fqn), torch.Tensor):
                    masks[fqn] = masks[fqn].clone().index_fill_(dim, index, False)
        record = {"eta": self.eta, "sigma": self.sigma, "census": conv_census(state.gm), "filters": filters,
                  "columns": columns,
                  "num_filters": sum(map(len, filters.values())), "num_columns": sum(map(len, columns.values()))}
        return state.with_(gm=gm, masks=masks, artifacts={**state.artifacts, self.name: record})
