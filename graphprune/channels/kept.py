"""A read-only view of a keep decision over the analysed graph: for any node and dim, which indices
survive, and therefore the node's new shape. Rewrites of baked constants read sizes from here."""

from __future__ import annotations

import builtins
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from graphprune.channels.layout import Layout
from graphprune.shapes.registry import TensorInfo


@dataclass(frozen=True)
class KeptView:
    layouts: dict[str, Any]
    values: dict[str, Any]
    keep_element: np.ndarray  # bool per element

    def _name(self, node: fx.Node | str) -> str:
        return node if isinstance(node, str) else node.name

    def mask(self, node: fx.Node | str, dim: int) -> np.ndarray | None:
        lay = self.layouts.get(self._name(node))
        if not isinstance(lay, Layout):
            return None
        info = self.values.get(self._name(node))
        dim = dim % info.ndim if isinstance(info, TensorInfo) else dim
        ids = lay.get(dim)
        return None if ids is None else self.keep_element[ids]

    def old_value(self, arg: Any) -> Any:
        """The dense graph's value of a literal or traced argument."""
        return self.values.get(arg.name) if isinstance(arg, fx.Node) else arg

    def new_value(self, arg: Any) -> Any:
        """What a traced size expression (``x.size(1) // 2``, ``x.shape[-1]``) evaluates to in the
        pruned graph; expressions it cannot follow are assumed unchanged."""
        if not isinstance(arg, fx.Node):
            return arg
        old = self.values.get(arg.name)
        if arg.op == "call_function" and arg.target is torch.ops.aten.sym_size.int:
            return self.new_shape(arg.args[0])[arg.args[1]]
        if arg.op == "call_method" and arg.target == "size":
            shape = self.new_shape(arg.args[0])
            dim = arg.args[1] if len(arg.args) > 1 else arg.kwargs.get("dim")
            return shape[dim] if dim is not None else tuple(shape)
        if arg.op == "call_function" and arg.target is builtins.getattr and arg.args[1] == "shape":
            return tuple(self.new_shape(arg.args[0]))
        if arg.op == "call_function" and arg.target in _SIZE_ARITHMETIC:
            args = [self.new_value(a) for a in arg.args]
            try:
                return arg.target(*args)
            except Exception:
                return old
        return old

    def old_shape(self, node: fx.Node | str) -> tuple[int, ...]:
        info = self.values[self._name(node)]
        return info.shape

    def new_shape(self, node: fx.Node | str) -> list[int]:
        return self.new_shape_of(self.values[self._name(node)], self.layouts.get(self._name(node)))

    def new_shape_of(self, info: TensorInfo, lay: Any) -> list[int]:
        shape = list(info.shape)
        if isinstance(lay, Layout):
            for d, ids in lay.dims.items():
                shape[d] = int(self.keep_element[ids].sum())
        return shape

    def expected(self, node: fx.Node | str) -> Any:
        """The pruned graph's expected result shape(s) for ``node`` (nested like its value)."""
        return _expected(self, self.values.get(self._name(node)), self.layouts.get(self._name(node)))

    def piece_sizes(self, node: fx.Node, dim: int) -> list[int] | None:
        pieces = self.values[node.name]
        lays = self.layouts.get(node.name)
        if not isinstance(lays, tuple):
            return None
        old = [p.shape[dim] for p in pieces]
        new = [self.new_shape_of(p, lay)[dim] for p, lay in zip(pieces, lays)]
        return new if new != old else None


_SIZE_ARITHMETIC = {operator.getitem, operator.floordiv, operator.mul, operator.add, operator.sub,
                    operator.truediv, operator.mod, builtins.int}


def _expected(view: KeptView, info: Any, lay: Any) -> Any:
    if isinstance(info, TensorInfo):
        return tuple(view.new_shape_of(info, lay))
    if isinstance(info, (tuple, list)):
        lays = lay if isinstance(lay, tuple) else (None,) * len(info)
        return tuple(_expected(view, i, sub) for i, sub in zip(info, lays))
    if isinstance(info, dict):
        lays = lay if isinstance(lay, dict) else {}
        return {k: _expected(view, v, lays.get(k)) for k, v in info.items()}
    return None
