"""Tiny models that each call one op key, for the table-driven op test (``test_every_op_key.py``).

A model is ``producers -> body -> head``: each producer (a 1x1 conv or a linear layer) makes eight
prunable channels, ``body`` calls the op on them through ``invoke`` and the head reads the result. The
producers' channels can only be pruned through the op's channel rule, so masked equivalence of the
pruned model checks that rule's index maps, and ``Case.through`` says whether they must be pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from graphprune.ops.registry import Method

C = 8  # channels each producer makes
INPUTS = {  # domain -> (example input, producer of C channels from it)
    "dense": (lambda: torch.randn(3, 4), lambda: nn.Linear(4, C)),
    "seq": (lambda: torch.randn(2, 5, 4), lambda: nn.Linear(4, C)),
    "signal": (lambda: torch.randn(2, 3, 10), lambda: nn.Conv1d(3, C, 1)),
    "image": (lambda: torch.randn(2, 3, 6, 6), lambda: nn.Conv2d(3, C, 1)),
    "volume": (lambda: torch.randn(1, 2, 4, 4, 4), lambda: nn.Conv3d(2, C, 1)),
    "tokens": (lambda: torch.randint(0, 20, (2, 5)), lambda: nn.Identity()),  # the op makes the channels
}
CONVS = {"signal": nn.Conv1d, "image": nn.Conv2d, "volume": nn.Conv3d}


@dataclass
class Case:
    model: nn.Module
    inputs: tuple
    exact: bool = False  # compile in exact mode (the op mixes channels: layer norm, softmax over channels)
    through: bool = True  # the producers' channels must be pruned through the op
    leaves: tuple = ()  # third-party layers kept as fx leaves (``compile(leaf_modules=...)``)


Builder = Callable[[Any], Case]


def _proxy(value: Any) -> fx.Proxy | None:
    found: list[fx.Proxy] = []
    fx.node.map_aggregate(value, lambda v: found.append(v) if isinstance(v, fx.Proxy) else None)
    return found[0] if found else None


def invoke(key: Any, *args: Any, **kwargs: Any) -> Any:
    """Call op ``key``. While tracing, record exactly one node with that key as its target: fx itself
    records some keys under another (``operator.iadd`` as ``add``, ``Tensor.__neg__`` as ``neg``)."""
    proxy = _proxy((args, kwargs))
    if proxy is not None:
        kind, target = ("call_method", key.name) if isinstance(key, Method) else ("call_function", key)
        return proxy.tracer.create_proxy(kind, target, args, kwargs)
    if isinstance(key, Method):
        return getattr(args[0], key.name)(*args[1:], **kwargs)
    return key(*args, **kwargs)


class Net(nn.Module):
    """``head(body(self, *(p(x) for p in pre)))``; ``op`` is the module under test, if the key is a class."""

    def __init__(self, pre: list[nn.Module], body: Callable, head: nn.Module, op: nn.Module | None = None,
                 params: dict | None = None, buffers: dict | None = None) -> None:
        super().__init__()
        self.pre, self.head, self.op, self.body = nn.ModuleList(pre), head, op, body
        for name, t in (params or {}).items():
            self.register_parameter(name, nn.Parameter(t))
        for name, t in (buffers or {}).items():
            self.register_buffer(name, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self, *[p(x) for p in self.pre]))


def head_for(domain: str, c: int = C) -> nn.Module:
    """Reads ``c`` channels where the domain keeps them: the last dim (dense, seq) or dim 1."""
    return CONVS[domain](c, 2, 1) if domain in CONVS else nn.Linear(c, 2)


def case(domain: str, body: Callable, head: nn.Module | None = None, n: int = 1, op: nn.Module | None = None,
         exact: bool = False, through: bool = True, params: dict | None = None, buffers: dict | None = None) -> Case:
    make_input, make_producer = INPUTS[domain]
    net = Net([make_producer() for _ in range(n)], body, head or head_for(domain), op, params, buffers)
    return Case(net, (make_input(),), exact, through)


def _module(key: Any, ctor: tuple) -> nn.Module | None:
    return key(*ctor) if isinstance(key, type) else None


def apply(key: Any, m: Net, *hs: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
    """The op on ``hs``: the module under test, else ``invoke``."""
    return m.op(*hs) if m.op is not None else invoke(key, *hs, *args, **(kwargs or {}))


def op(domain: str = "dense", *args: Any, n: int = 1, pre: Callable | None = None, post: Callable | None = None,
       ctor: tuple = (), head: Callable | None = None, exact: bool = False, through: bool = True,
       call: Callable | None = None, params: Callable | None = None, buffers: Callable | None = None,
       leaf: bool = False, make: Callable | None = None, **kwargs: Any) -> Builder:
    """The op applied to ``n`` producers' outputs, each C channels in ``domain``: ``pre(*hs)`` gives its
    operands (default: the outputs), ``post(y, *hs)`` turns its result into what the head reads;
    ``call(key, m, *operands)`` replaces the call itself where it reads the model's own tensors, made by
    ``params()`` / ``buffers()``. ``ctor``: the arguments of a module key's constructor (``make(key)``
    builds the module instead); ``leaf``: trace that (third-party) module as a leaf, as
    ``compile(leaf_modules=...)`` does."""

    def build(key: Any) -> Case:
        def body(m: Net, *hs: Any) -> Any:
            operands = pre(*hs) if pre else hs
            y = call(key, m, *operands) if call else apply(key, m, *operands, args=args, kwargs=kwargs)
            return post(y, *hs) if post else y

        module = make(key) if make else _module(key, ctor)
        built = case(domain, body, head() if head else None, n, module, exact, through,
                     params() if params else None, buffers() if buffers else None)
        built.leaves = (key,) if leaf else ()
        return built

    return build


def positive(h: torch.Tensor) -> tuple:
    """An operand without zeros or negatives, for logs, roots and denominators (0 where h is 0)."""
    return (h * h + 1,)


def times(y: torch.Tensor, h: torch.Tensor, *rest: Any) -> torch.Tensor:
    """A boolean or index-valued result back into a float activation on h's channels."""
    return h * y


def as_float(y: torch.Tensor, *hs: Any) -> torch.Tensor:
    return y.float()


def first(y: Any, *hs: Any) -> torch.Tensor:
    return y[0]


def both(y: Any, *hs: Any) -> torch.Tensor:
    return y[0] + y[1]
