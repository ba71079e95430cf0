"""The module form of statistics the pruned graph keeps over the original width (``statistics = "exact"``).

Why: the graph computes such a statistic with a kernel over the kept channels and the original count
(``graphprune.ops.full_width``); the user's own layer computes it over the width it has. Where the layer
can carry the difference in its own parameters (an RMSNorm: its weight over ``sqrt(r)`` and eps over ``r``,
``r`` the kept fraction), the copy of the user's class is exact too; its class declares how
(``OpSpec.fold_full_width``). Any other statistic (a LayerNorm's, a mean in ``forward`` code) refuses the
module form in one line, naming it, since the copy could not equal the graph.

Each statistic is found by its graph node: a ``call_module`` names its layer; an exported graph's node
carries its layer in ``nn_module_stack``, the innermost entry being the module whose ``forward`` ran it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.fx as fx
from torch import nn

from graphprune.errors import InputError
from graphprune.ops.registry import inherited

Folds = dict[str, Callable[[nn.Module, float], None]]


def planned_folds(model: nn.Module, artifacts: Mapping[str, Any], graph: nn.Module | None) -> Folds:
    """Layer path -> fold for every full-width statistic of ``artifacts``; InputError if one has none."""
    names = (artifacts or {}).get("statistics", {}).get("full_width") or []
    if not names:
        return {}
    owners = _owners(graph, names)
    folds: Folds = {}
    for name in names:
        path = owners.get(name)
        layer = _submodule(model, path)
        fold = inherited(layer, "fold_full_width") if layer is not None else None
        if fold is None:
            what = f"{name} in {path} ({type(layer).__name__})" if layer is not None else name
            raise InputError(f"apply: {len(names)} normalisation statistics are kept over the original width "
                             f"(statistics = 'exact'), and {what} has no layer that can carry it: compile "
                             f"with statistics='renormalize' for the module form (reported inexact), or use "
                             f"form='graphmodule'")
        folds[path] = fold
    return folds


def fold(module: nn.Module, model: nn.Module, folds: Folds) -> None:
    """Fold each statistic into the resized ``module``'s layer (after its weights are final)."""
    for path, fn in folds.items():
        layer, dense = module.get_submodule(path), model.get_submodule(path)
        try:
            fn(layer, layer.weight.numel() / dense.weight.numel())
        except ValueError as exc:
            raise InputError(f"apply: {path} ({type(layer).__name__}) cannot carry its full-width statistic: "
                             f"{exc}; use form='graphmodule'") from None


def _owners(graph: nn.Module | None, names: list[str]) -> dict[str, str]:
    if not isinstance(graph, fx.GraphModule):
        return {}
    wanted, owners = set(names), {}
    for node in graph.graph.nodes:
        if node.name not in wanted:
            continue
        if node.op == "call_module":
            owners[node.name] = str(node.target)
        elif node.meta.get("nn_module_stack"):
            owners[node.name] = list(node.meta["nn_module_stack"].values())[-1][0]
    return owners


def _submodule(model: nn.Module, path: str | None) -> nn.Module | None:
    if path is None:
        return None
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None
