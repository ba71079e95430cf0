"""Shape machinery: the result shape of common ops computed in Python instead of on fake tensors.

A fake-tensor call costs ~0.2 ms (FakeTensorMode dispatch, caching, validation, FLOP counting); a formula
costs a few microseconds. Value propagation asks the op table (``graphprune.ops.registry.formula_for``)
first and runs the op on fake tensors only when no formula applies. A formula is exact or it declines:
it returns ``None`` (the caller then runs the real kernel on fake tensors) for every case it does not
fully model, including every argument combination on which the op would raise, so errors are still
torch's own.

The formulas themselves are declared in each op's family module (``graphprune.ops.*``), next to its
channel rule; this module holds what they share: ``Meta`` and ``Call`` (what a formula consumes and
produces), ``TensorInfo`` and small helpers. Keys are exact (a subclass may override ``forward``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class Meta:
    """A tensor known only by shape, dtype and device: what a formula produces and consumes.
    Strides are not modelled (no result shape depends on them)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @property
    def ndim(self) -> int:
        return len(self.shape)


def spec(value: Any) -> Meta | None:
    """The Meta of a tensor-like value (Meta, fake or real tensor), else None."""
    if isinstance(value, Meta):
        return value
    if isinstance(value, torch.Tensor):
        return Meta(tuple(value.shape), value.dtype, value.device)
    return None


def is_tensor(value: Any) -> bool:
    return isinstance(value, (Meta, torch.Tensor))


@dataclass
class Call:
    """One op application as a formula sees it: evaluated arguments (tensors as Meta or tensors),
    the called module for ``call_module``, and the multiply-accumulates the formula counts."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    module: nn.Module | None = None
    macs: int = field(default=0)

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        if index < len(self.args):
            return self.args[index]
        return self.kwargs.get(name, default)

    def only(self, *names: str, max_args: int) -> bool:
        """True if the call uses at most ``max_args`` positional arguments and only these keywords."""
        return len(self.args) <= max_args and all(k in names for k in self.kwargs)


Formula = Callable[[Call], Any]


def dim_index(dim: Any, ndim: int) -> int | None:
    """``dim`` wrapped into ``[0, ndim)``, or None when torch would reject it."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        return None
    return dim % rank


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The broadcast shape, or None if the shapes do not broadcast."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        sizes = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def ints(values: Any) -> tuple[int, ...] | None:
    """A size argument as a tuple of Python ints (``view(2, 3)`` or ``view((2, 3))``), else None."""
    if len(values) == 1 and isinstance(values[0], (tuple, list, torch.Size)):
        values = values[0]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return tuple(values)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@dataclass(frozen=True)
class TensorInfo:
    """What the analysis keeps of a tensor result."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def module_input(call: Call, floating: bool = True) -> Meta | None:
    """The single positional tensor argument of a module call."""
    if len(call.args) != 1 or call.kwargs:
        return None
    x = spec(call.args[0])
    return x if x is not None and (x.dtype.is_floating_point or not floating) else None


def matches(tensor: Any, shape: tuple[int, ...], x: Meta) -> bool:
    """An optional parameter is absent, or has exactly ``shape`` and the input's dtype and device."""
    return tensor is None or (tuple(tensor.shape) == shape and tensor.dtype == x.dtype and tensor.device == x.device)


def as_tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def floating(x: Any) -> Meta | None:
    """``x`` as a Meta if it is a floating-point tensor, else None."""
    m = spec(x)
    return m if m is not None and m.dtype.is_floating_point else None
