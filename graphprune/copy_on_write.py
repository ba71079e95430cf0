"""Copies of a state's GraphModule that a pass may change, so that its input state stays as it was.

A pass never mutates its input state (xDSL's ``apply_to_clone``): a failed pass leaves the previous
state intact, and a state kept aside (a baseline, a second plan's starting point) stays valid. Copies
are cheap where they can be: ``writable`` gives the pass its own graph and module objects but shares
every tensor until the pass replaces it (passes replace tensors, they never write into them);
``trainable`` also copies the tensors, because training writes into them in place."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.fx as fx
from torch import nn

from graphprune import tensor_ops
from graphprune.trace import own_containers, private_hierarchy


def writable(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``gm`` to rewrite: its own graph (same node names, so the same code and the same keys
    in ``state.values``), its own module objects with their own containers (parameters, buffers, submodules, hooks), and
    the same tensors. A lazily compiled GraphModule stays lazy (its code is generated on first run)."""
    clone = fx.GraphModule.__new__(type(gm))  # a class of its own: fx installs ``forward`` per class
    clone.__dict__.update(gm.__dict__)
    own_containers(clone, gm)
    clone.__dict__["_modules"] = {name: None if m is None else private_hierarchy(m) for name, m in gm._modules.items()}
    clone.graph = copy.deepcopy(gm.graph)  # the setter makes the copy own it and recompiles (lazily)
    return clone


def trainable(gm: fx.GraphModule) -> fx.GraphModule:
    """``writable(gm)`` with every parameter and buffer copied too (a tied one stays one tensor), for a
    pass that trains the module in place. The user's tensors and the input state's stay untouched."""
    clone = writable(gm)
    copy_tensors(clone, lambda t: True)
    return clone


def unshare(module: nn.Module, original: nn.Module) -> None:
    """Copy every parameter/buffer of ``module`` still shared with ``original`` (the end of
    copy-on-write: training the result must not write into the user's tensors)."""
    shared = {t.data_ptr() for t in (*original.parameters(), *original.buffers()) if t.numel()}
    copy_tensors(module, lambda t: bool(t.numel()) and t.data_ptr() in shared)


def copy_tensors(module: nn.Module, which: Callable[[torch.Tensor], bool]) -> None:
    """Give ``module`` its own copy of every parameter/buffer ``which`` selects, one copy per tensor, so
    a tied parameter stays one tensor."""
    copies: dict[int, torch.Tensor] = {}
    for m in module.modules():
        for store in (m._parameters, m._buffers):
            for name, t in store.items():
                if t is None or not which(t):
                    continue
                if id(t) not in copies:
                    copies[id(t)] = nn.Parameter(tensor_ops.copy(t), t.requires_grad) \
                        if isinstance(t, nn.Parameter) else tensor_ops.copy(t)
                store[name] = copies[id(t)]
