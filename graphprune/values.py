"""Value propagation: run the traced graph once on fake tensors and keep, for every node, what the
channel analysis needs to know about its result — tensor shapes and plain Python values (sizes,
slices, dims). Fake tensors carry no storage, so the cost is the graph's, not the weights'. A graph
that fake tensors cannot run (data-dependent ops) falls back to one real forward under no_grad.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from graphprune.errors import InputError


@dataclass(frozen=True)
class TensorInfo:
    """What the analysis keeps of a tensor result."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def summarize(value: Any) -> Any:
    """Replace tensors (fake or real) by TensorInfo, recursively through tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return TensorInfo(tuple(int(s) for s in value.shape), value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(summarize(v) for v in value) if not hasattr(value, "_fields") else tuple(
            summarize(v) for v in value
        )
    if isinstance(value, dict):
        return {k: summarize(v) for k, v in value.items()}
    return value


# Leaf modules whose output has the input's shape and dtype. Under fake tensors their kernels are
# decomposed op by op (BatchNorm costs ~30 ms a call), yet all we need is the shape.
_SHAPE_PRESERVING = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.Mish,
    nn.Identity, nn.Dropout, nn.Dropout2d,
)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, shortcut: bool) -> None:
        super().__init__(gm, garbage_collect_values=True)
        self.values: dict[str, Any] = {}
        self.shortcut = shortcut
        self.extra_macs = 0

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        self.values[n.name] = summarize(result)
        return result

    def call_module(self, target: Any, args: tuple, kwargs: dict) -> Any:
        module = self.fetch_attr(target)
        plain = self.shortcut and type(module).__module__.startswith("torch.nn") and len(args) == 1 \
            and not kwargs and isinstance(args[0], torch.Tensor)
        if plain and isinstance(module, _SHAPE_PRESERVING):
            return torch.empty_like(args[0])
        if plain and type(module) is nn.Linear:
            return self._linear(args[0], module.weight)
        return super().call_module(target, args, kwargs)

    def call_function(self, target: Any, args: tuple, kwargs: dict) -> Any:
        if self.shortcut and target is F.linear and len(args) >= 2 and not kwargs and all(
                isinstance(a, torch.Tensor) for a in args[:2]):
            return self._linear(args[0], args[1])
        return super().call_function(target, args, kwargs)

    def _linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Fake linear by its shape (the fake kernel decomposes it, ~5 ms a call); MACs counted here."""
        if x.shape[-1] != weight.shape[1]:
            raise RuntimeError(f"linear: input has {x.shape[-1]} features, weight expects {weight.shape[1]}")
        self.extra_macs += (x.numel() // max(x.shape[-1], 1)) * weight.shape[0] * weight.shape[1]
        return x.new_empty((*x.shape[:-1], weight.shape[0]))


def propagate(gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> dict[str, Any]:
    """Node name -> summarized result (TensorInfo / Python value) for every node of ``gm``."""
    return propagate_counting(gm, example_inputs)[0]


def propagate_counting(gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> tuple[dict[str, Any], int]:
    """``propagate`` plus the graph's multiply-accumulates (FLOPs / 2 of conv, linear, matmul, attention),
    counted in the same run."""
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    level = fake_log.level
    fake_log.setLevel(logging.CRITICAL)  # a failing op is our error to report, not torch's log spew
    try:
        return _propagate_counting(gm, example_inputs)
    finally:
        fake_log.setLevel(level)


def _propagate_counting(gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> tuple[dict[str, Any], int]:
    was_training = gm.training
    gm.eval()
    try:
        try:
            mode = FakeTensorMode(allow_non_fake_inputs=True, shape_env=None)
            fake_inputs = tuple(mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in example_inputs)
            counter = FlopCounterMode(display=False)
            with mode, counter, torch.no_grad():
                recorder = _Recorder(gm, shortcut=True)
                recorder.run(*fake_inputs)
            return recorder.values, int(counter.get_total_flops() // 2) + recorder.extra_macs
        except Exception:
            recorder = _Recorder(gm, shortcut=False)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                recorder.run(*example_inputs)
            return recorder.values, int(counter.get_total_flops() // 2)
    except Exception as exc:
        shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__ for x in example_inputs]
        raise InputError(
            f"the model does not run on the example inputs {shapes}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    finally:
        gm.train(was_training)


__all__ = ["TensorInfo", "propagate", "propagate_counting", "summarize"]
