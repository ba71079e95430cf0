"""Canonical forms that make channel maps exact without constraints.

A channel shuffle written as ``view -> transpose -> view`` only stays valid after pruning if both halves
keep the same pattern, which ties channels across the shuffled groups. The same movement is a plain
permutation of the channel dim, and a permutation survives any keep set. We find chains of pure
movement ops whose output has the input's shape, run the chain on an element-id tensor (arange in the
input's shape) and, if the result permutes a single dim, replace the chain by ``index_select`` with a
constant index buffer. Semantics are unchanged; the removal pass re-derives the index.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from graphprune.eager_args import node_args
from graphprune.ops.registry import Method, Trait, has_trait, twin_of
from graphprune.values import TensorInfo

PERM_PREFIX = "_gp_channel_perm"


def _is_movement(node: fx.Node) -> bool:
    """A rearrangement its family declares (``Trait.REARRANGES``); an op declared as another's twin
    (``aten.view`` as ``torch.reshape``) is its twin."""
    if node.op == "call_method":
        return has_trait(Method(str(node.target)), Trait.REARRANGES)
    return node.op == "call_function" and has_trait(twin_of(node.target), Trait.REARRANGES)


def _chain_from(start: fx.Node) -> list[fx.Node]:
    chain, node = [start], start
    while len(node.users) == 1:
        nxt = next(iter(node.users))
        if not _is_movement(nxt) or nxt.args[0] is not node:
            break
        chain.append(nxt)
        node = nxt
    return chain


def _run_on_ids(chain: list[fx.Node], source: fx.Node, ids: torch.Tensor, values: dict[str, Any]) -> list:
    env = {source.name: ids}
    outs = []
    for node in chain:
        args, kwargs = node_args(node, lambda n: env[n.name] if n.name in env else values[n.name])
        if node.op == "call_method":
            out = getattr(args[0], str(node.target))(*args[1:], **kwargs)
        else:
            out = node.target(*args, **kwargs)
        env[node.name] = out
        outs.append(out)
    return outs


def _single_dim_permutation(ids: torch.Tensor, out: torch.Tensor) -> tuple[int, torch.Tensor] | None:
    if out.shape != ids.shape:
        return None
    for dim in range(1, ids.ndim):
        first = [0] * ids.ndim
        index = [slice(None) if d == dim else 0 for d in range(ids.ndim)]
        stride = ids.stride(dim)
        perm = (out[tuple(index)] - ids[tuple(first)]) // stride
        if perm.min() < 0 or perm.max() >= ids.shape[dim]:
            continue
        if torch.equal(ids.index_select(dim, perm), out):
            identity = torch.equal(perm, torch.arange(ids.shape[dim]))
            return None if identity else (dim, perm)
    return None


def fold_channel_permutations(gm: fx.GraphModule, values: dict[str, Any]) -> int:
    """Replace movement chains that permute one dim by ``index_select``; returns how many."""
    folded = 0
    for node in list(gm.graph.nodes):
        if not _is_movement(node) or (isinstance(node.args[0], fx.Node) and _is_movement(node.args[0])):
            continue
        source = node.args[0]
        info = values.get(source.name) if isinstance(source, fx.Node) else None
        if not isinstance(info, TensorInfo) or info.ndim < 2:
            continue
        chain = _chain_from(node)
        if len(chain) < 2:
            continue
        ids = torch.arange(int(torch.tensor(info.shape).prod())).reshape(info.shape)
        try:
            outs = _run_on_ids(chain, source, ids, values)
        except Exception:
            continue
        for end in range(len(chain) - 1, 0, -1):
            found = _single_dim_permutation(ids, outs[end])
            if found is not None:
                _replace(gm, source, chain[end], *found, folded)
                folded += 1
                break
    if folded:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return folded


def _replace(gm: fx.GraphModule, source: fx.Node, end: fx.Node, dim: int, perm: torch.Tensor, k: int) -> None:
    name = f"{PERM_PREFIX}_{k}"
    gm.register_buffer(name, perm.clone(), persistent=False)  # ours: the state_dict keeps the user's keys
    with gm.graph.inserting_after(end):
        index = gm.graph.get_attr(name)
    with gm.graph.inserting_after(index):
        gathered = gm.graph.call_function(torch.index_select, (source, dim, index))
    end.replace_all_uses_with(gathered)
    gathered.args = (source, dim, index)

