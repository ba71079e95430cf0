"""Shared checks for the op family tests: a shape formula agrees with torch (same result shapes,
dtypes and MACs as running the op, and it declines wherever torch raises), and a tiny model's channels
are removed exactly (masked equivalence)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from graphprune.liveness.ops import kind_of
from graphprune.ops.registry import Method, formula_for
from graphprune.shapes import Call, Meta, spec
from graphprune.trace import trace
from tests.helpers import compile_and_check


def t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def _meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return spec(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_meta(v) for v in value)
    return value


def _summary(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, Meta)):
        return tuple(value.shape), value.dtype
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return tuple(_summary(v) for v in value)
    return value


def _real(fn, args, kwargs):
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            out = fn(*args, **kwargs)
    except Exception:
        return None, None
    return out, counter.get_total_flops() // 2


def check(key, fn, args, kwargs=None, module=None, handled=True):
    kwargs = kwargs or {}
    real, macs = _real(fn, args, kwargs)
    call = Call(_meta(tuple(args)), _meta(kwargs), module)
    got = formula_for(key)(call)
    if real is None:
        assert got is None, "formula accepted a call torch rejects"
        return
    if not handled:
        return
    assert got is not None, "formula declined a call it should model"
    assert _summary(got) == _summary(real)
    assert call.macs == macs


def check_layer(module: nn.Module, x: torch.Tensor) -> None:
    """A module's formula on input ``x``, against running the module."""
    check(type(module), module, (x,), module=module)


def check_function(key: Any, args: tuple) -> None:
    """A function's or tensor method's formula on ``args``, against calling it."""
    fn = (lambda *a: getattr(a[0], key.name)(*a[1:])) if isinstance(key, Method) else key
    check(key, fn, args)


def key_id(value: Any) -> str | None:
    """Test ids: a module's class name, a function's or method's name."""
    if isinstance(value, nn.Module):
        return type(value).__name__
    return getattr(value, "__name__", None) or getattr(value, "name", None)


def conv_bn(cin: int, cout: int, **kw) -> nn.Sequential:
    """The conv -> batch norm -> ReLU block the family tests build their models from."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False, **kw), nn.BatchNorm2d(cout), nn.ReLU())


def removes_channels_exactly(cls: type[nn.Module], make_input: Any) -> None:
    """``cls()`` compiles at sparsity 0.5: no op unknown, parameters removed, the masked dense function kept."""
    torch.manual_seed(0)
    model = cls().eval()
    result = compile_and_check(model, make_input(), sparsity=0.5)
    assert result.report.unknown_ops == []
    assert result.report.params_after < result.report.params_before


class _Call(nn.Module):
    """``fn(x)``, or ``op(x)`` for a module under test."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.op = fn if isinstance(fn, nn.Module) else None
        self.fn = None if isinstance(fn, nn.Module) else fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x) if self.op is not None else self.fn(x)


def zero_kind(fn: Any) -> str:
    """How unused-path removal sees the op ``fn`` (a function of x, or a module) treat an all-zero channel."""
    gm = trace(_Call(fn))
    node = next(n for n in reversed(gm.graph.nodes) if n.op not in ("output", "placeholder"))
    return kind_of(node, gm).zero
