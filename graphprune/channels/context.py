"""What a rule sees: the node, its inputs' layouts and values, and the element table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch.fx as fx
from torch import nn

from graphprune.channels.elements import ElementTable, Ids
from graphprune.channels.layout import EMPTY, Layout, iter_layouts
from graphprune.shapes.registry import TensorInfo


def empty_like(value: Any) -> Any:
    """An all-empty layout with the structure of a summarized value."""
    if isinstance(value, TensorInfo):
        return EMPTY
    if isinstance(value, (tuple, list)):
        return tuple(empty_like(v) for v in value)
    if isinstance(value, dict):
        return {k: empty_like(v) for k, v in value.items()}
    return None


@dataclass
class RuleContext:
    node: fx.Node
    table: ElementTable
    root: nn.Module
    layouts: dict[str, Any]
    values: dict[str, Any]
    modules: Mapping[str, nn.Module] | None = None  # root.named_modules(remove_duplicate=False), if known

    # -- arguments ---------------------------------------------------------------------------------
    def arg(self, index: int, name: str | None = None, default: Any = None) -> Any:
        """Raw argument (fx.Node or literal) by position or keyword."""
        if index < len(self.node.args):
            return self.node.args[index]
        if name is not None and name in self.node.kwargs:
            return self.node.kwargs[name]
        return default

    def value(self, arg: Any) -> Any:
        """Python value of an argument, with nodes replaced by their propagated values."""
        return fx.node.map_arg(arg, lambda n: self.values[n.name])

    def layout(self, arg: Any) -> Any:
        """The layout of an argument of any structure: a node's layout, a tuple of layouts for a
        tuple/list (namedtuples included), a dict of layouts for a dict (OrderedDict, ModelOutput),
        None for a constant. Every leaf is kept, so freezing an argument reaches all of its tensors."""
        if isinstance(arg, fx.Node):
            return self.layouts.get(arg.name, EMPTY)
        if isinstance(arg, (tuple, list)):
            return tuple(self.layout(a) for a in arg)
        if isinstance(arg, dict):
            return {k: self.layout(v) for k, v in arg.items()}
        if isinstance(arg, slice):
            return tuple(self.layout(a) for a in (arg.start, arg.stop, arg.step))
        return None

    def info(self, arg: Any) -> TensorInfo | None:
        v = self.value(arg)
        return v if isinstance(v, TensorInfo) else None

    @property
    def out(self) -> Any:
        return self.values[self.node.name]

    @property
    def module(self) -> nn.Module:
        target = str(self.node.target)
        if self.modules is not None and target in self.modules:
            return self.modules[target]
        return self.root.get_submodule(target)

    @property
    def name(self) -> str:
        return self.node.name

    def input_layouts(self) -> Iterator[Layout]:
        for a in (*self.node.args, *self.node.kwargs.values()):
            yield from iter_layouts(self.layout(a))

    # -- effects -----------------------------------------------------------------------------------
    def freeze_inputs(self, reason: str) -> None:
        for lay in self.input_layouts():
            for ids in lay.all_ids():
                self.table.freeze(ids, reason, self.name)

    def freeze(self, ids: Ids | None, reason: str) -> None:
        if ids is not None:
            self.table.freeze(ids, reason, self.name)

    def param(self, attr: str, dim: int) -> Ids | None:
        """Elements of dim ``dim`` of this module's parameter/buffer ``attr`` (None if absent/size 1)."""
        tensor = getattr(self.module, attr, None)
        if tensor is None or tensor.ndim <= dim or tensor.shape[dim] <= 1:
            return None
        return self.table.param(f"{self.node.target}.{attr}", dim, int(tensor.shape[dim]))

    def bind_param(self, attr: str, dim: int, ids: Ids | None) -> Ids | None:
        """``param(attr, dim)`` coupled to ``ids``: the same channels as ``unify(param(...), ids)``,
        without new elements where the sizes match."""
        tensor = getattr(self.module, attr, None)
        if ids is None or tensor is None or tensor.ndim <= dim or tensor.shape[dim] != len(ids) \
                or tensor.shape[dim] <= 1:
            return self.param(attr, dim)
        return self.table.bind(f"{self.node.target}.{attr}", dim, ids)

    def couple_all(self, aligned: list[Ids | None], reason: str) -> Ids | None:
        """Operands aligned on one dim (element-wise, concatenated, batched): one channel per index if
        all carry tracked channels; if only some do, those cannot shrink alone and freeze. Returns the
        ids the result carries (None when frozen: a frozen dim never shrinks, so nothing to track)."""
        tracked = [ids for ids in aligned if ids is not None]
        if not tracked:
            return None
        if len(tracked) < len(aligned):
            for ids in tracked:
                self.freeze(ids, reason)
            return None
        for ids in tracked[1:]:
            self.table.unify(tracked[0], ids)
        return tracked[0]

    def couple(self, a: Ids | None, b: Ids | None, reason: str) -> Ids | None:
        """Unify two index-aligned channel sets; if only one side carries channels, that side cannot
        be pruned alone, so freeze it. Returns the ids the result carries."""
        if a is not None and b is not None:
            self.table.unify(a, b)
            return a
        if a is not None or b is not None:
            ids = a if a is not None else b
            self.freeze(ids, reason)
            return ids
        return None
