"""fuse: fold eval-mode BatchNorm into the adjacent conv / transposed conv / linear and drop inference
no-ops (eval-mode dropout, identities).

Preconditions: ``traced`` (dense or pruned). The result is an inference graph in eval mode computing
what the input graph computes in eval mode. A BatchNorm (``nn.BatchNorm*d`` leaf or ``F.batch_norm``
on constant statistics) folds into the layer before it when that layer's output has no other user,
otherwise into the layer after it when it is that layer's only input use and the fold is exact: a
non-transposed conv with no zero padding (padding copies of the BatchNorm output — reflect, replicate,
circular — commute with it) or a linear layer on ``[N, C]``. A layer called from two places is never
changed. The input state's graph and modules are not touched: the pass works on a copy whose changed
layers are fresh module objects with fresh parameters. Records counts in ``artifacts["fuse"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from graphprune.fold import bn_affine, fold_into_consumer, fold_into_producer
from graphprune.ops.registry import Trait, has_trait
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState
from graphprune.trace import private_hierarchy
from graphprune.values import TensorInfo, propagate

_DROPOUT_FNS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout)
_BN_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")


class _Fuser:
    def __init__(self, gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> None:
        graph = fx.Graph()
        graph.output(graph.graph_copy(gm.graph, {}))
        self.gm = fx.GraphModule(gm, graph, type(gm).__name__)  # fresh containers, shared leaves
        self.original, self.inputs = gm, example_inputs  # node names survive graph_copy
        self._shapes: dict[str, Any] | None = None
        self.uses: dict[str, int] = {}
        for node in self.gm.graph.nodes:
            if node.op in ("call_module", "get_attr"):
                owner = str(node.target) if node.op == "call_module" else str(node.target).rpartition(".")[0]
                self.uses[owner] = self.uses.get(owner, 0) + 1
        self.record = {"bn_into_preceding": 0, "bn_into_following": 0, "dropout_removed": 0,
                       "identity_removed": 0, "bn_left": []}

    def ndim(self, node: fx.Node) -> int | None:
        if self._shapes is None:
            self._shapes = propagate(self.original, self.inputs)
        info = self._shapes.get(node.name)
        return info.ndim if isinstance(info, TensorInfo) else None

    def layer(self, node: fx.Node, trait: Trait) -> nn.Module | None:
        """The leaf module a call_module node runs, if it has ``trait`` and is used by this node alone."""
        if node.op != "call_module" or self.uses.get(str(node.target)) != 1:
            return None
        module = self.gm.get_submodule(str(node.target))
        return module if has_trait(module, trait) else None

    def replace_params(self, node: fx.Node, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Swap in a copy of the module with new parameters: the old module may be the user's."""
        old = self.gm.get_submodule(str(node.target))
        new = copy.copy(old)
        new._parameters = dict(old._parameters)
        new.weight = nn.Parameter(weight, old.weight.requires_grad)
        new.bias = nn.Parameter(bias, old.weight.requires_grad)
        self.set_module(str(node.target), new)

    def set_module(self, target: str, module: nn.Module) -> None:
        parent, _, attr = target.rpartition(".")
        setattr(self.gm.get_submodule(parent) if parent else self.gm, attr, module)

    def foldable_norm(self, node: fx.Node) -> tuple[fx.Node, torch.Tensor, torch.Tensor] | None:
        """(input node, scale, shift) of an eval-mode BatchNorm node on running statistics."""
        if node.op == "call_module":
            bn = self.gm.get_submodule(str(node.target))
            if not has_trait(bn, Trait.FOLDABLE_INTO_CONV) or bn.running_mean is None \
                    or len(node.args) != 1 or node.kwargs:
                return None
            return (node.args[0], *bn_affine(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps))
        if node.op != "call_function" or not has_trait(node.target, Trait.FOLDABLE_INTO_CONV):
            return None
        a = {**dict(zip(_BN_ARGS, node.args)), **node.kwargs}
        tensors = [a.get(k) for k in ("running_mean", "running_var", "weight", "bias")]
        if a.get("training", False) is not False or not all(
                t is None or (isinstance(t, fx.Node) and t.op == "get_attr") for t in tensors) or tensors[0] is None:
            return None
        mean, var, w, b = (None if t is None else _fetch(self.gm, t) for t in tensors)
        return (a["input"], *bn_affine(mean, var, w, b, a.get("eps", 1e-5)))

    def into_producer(self, bn: fx.Node, x: fx.Node, scale: torch.Tensor, shift: torch.Tensor) -> bool:
        layer = self.layer(x, Trait.WEIGHT_LAYER)
        if layer is None or len(x.users) != 1 or (_is_linear(layer) and self.ndim(x) != 2):
            return False
        groups = getattr(layer, "groups", 1)
        self.replace_params(x, *fold_into_producer(layer.weight, layer.bias, scale, shift, groups,
                                                   has_trait(layer, Trait.TRANSPOSED)))
        bn.replace_all_uses_with(x)
        return True

    def into_consumer(self, bn: fx.Node, x: fx.Node, scale: torch.Tensor, shift: torch.Tensor) -> bool:
        if len(bn.users) != 1:
            return False
        (user,) = bn.users
        layer = self.layer(user, Trait.FILTER_ROWS)
        if layer is None or user.args != (bn,) or user.kwargs:
            return False
        if _is_linear(layer) and self.ndim(bn) != 2:
            return False
        if not _is_linear(layer) and layer.padding_mode == "zeros" and not _no_padding(layer):
            return False
        groups = getattr(layer, "groups", 1)
        self.replace_params(user, *fold_into_consumer(layer.weight, layer.bias, scale, shift, groups))
        user.args = (x,)
        return True

    def run(self) -> fx.GraphModule:
        for node in list(self.gm.graph.nodes):  # first: a dropout between a BN and its conv hides it
            if _is_noop(self.gm, node):
                kind = "identity_removed" if node.op == "call_module" and isinstance(
                    self.gm.get_submodule(str(node.target)), nn.Identity) else "dropout_removed"
                node.replace_all_uses_with(node.args[0])
                self.gm.graph.erase_node(node)
                self.record[kind] += 1
        for node in list(self.gm.graph.nodes):
            bn = self.foldable_norm(node)
            if bn is None or not isinstance(bn[0], fx.Node):
                continue
            if self.into_producer(node, *bn):
                self.record["bn_into_preceding"] += 1
            elif self.into_consumer(node, *bn):
                self.record["bn_into_following"] += 1
            else:
                self.record["bn_left"].append(node.name)
                continue
            self.gm.graph.erase_node(node)
        for node in list(self.gm.graph.nodes):
            if node.op == "get_attr" and not node.users:
                self.gm.graph.erase_node(node)
        self.gm.delete_all_unused_submodules()
        self.gm.recompile()
        return self.in_eval_mode()

    def in_eval_mode(self) -> fx.GraphModule:
        """``gm.eval()`` without flipping shared leaf modules (they may be the user's): private copies
        of the leaves in training mode first, then every module left is fresh or already in eval mode."""
        present = dict(self.gm.named_modules())
        for name, module in [(n, present[n]) for n in self.uses if n and n in present]:
            if any(m.training for m in module.modules()):
                self.set_module(name, private_hierarchy(module).eval())
        return self.gm.eval()


def _fetch(gm: fx.GraphModule, node: fx.Node) -> torch.Tensor:
    obj: Any = gm
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    return obj


def _is_linear(layer: nn.Module) -> bool:
    """A weight layer over the last dim (weight ``(out, in)``); a convolution's weight has kernel dims."""
    return layer.weight.ndim == 2


def _no_padding(conv: nn.Module) -> bool:
    if isinstance(conv.padding, str):
        return conv.padding == "valid" or all(k == 1 for k in conv.kernel_size)
    return all(p == 0 for p in conv.padding)


def _is_noop(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Eval-mode dropout and identities with a single tensor argument."""
    if len(node.args) < 1 or not isinstance(node.args[0], fx.Node):
        return False
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        return isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)) and len(node.args) == 1 \
            and not node.kwargs
    if node.op == "call_function" and node.target in _DROPOUT_FNS:
        training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
        return training is False
    return False


def fuse(gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> tuple[fx.GraphModule, dict[str, Any]]:
    """A fused copy of ``gm`` and what was folded or removed (``gm`` itself is not changed)."""
    fuser = _Fuser(gm, tuple(example_inputs))
    return fuser.run(), fuser.record


@dataclass(frozen=True)
class Fuse(Pass):
    name = "fuse"
    requires = frozenset({"traced"})
    provides = frozenset({"fused"})
    invalidates = frozenset({"shapes", "groups", "keep"})
    stage = Stage.FUSE
    default_for = frozenset({"fused"})

    def run(self, state: CompileState) -> CompileState:
        gm, record = fuse(state.gm, state.example_inputs)
        return state.with_(gm=gm, values=None, artifacts={**state.artifacts, "fuse": record})
