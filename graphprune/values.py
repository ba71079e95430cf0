"""Value propagation: run the traced graph once without real compute and keep, for every node, what
the channel analysis needs to know about its result — tensor shapes and plain Python values (sizes,
slices, dims). Common ops get their result shape (and MACs) from a formula (``graphprune.ops``,
microseconds a node); every other node runs its own code on fake tensors (no storage, ~0.2 ms a
node). A graph that fake tensors cannot run (data-dependent ops) falls back to one real forward
under no_grad.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

import graphprune.ops  # noqa: F401  (declares every op's shape formula)
from graphprune.eager_args import node_args
from graphprune.errors import InputError
from graphprune.ops.registry import Method, formula_for
from graphprune.shapes.registry import Call, Meta, TensorInfo, spec


def summarize(value: Any) -> Any:
    """Replace tensors (fake or real) by TensorInfo, recursively through tuples, lists and dicts."""
    if isinstance(value, Meta):
        return TensorInfo(value.shape, value.dtype)
    if isinstance(value, torch.Tensor):
        return TensorInfo(tuple(int(s) for s in value.shape), value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(summarize(v) for v in value) if not hasattr(value, "_fields") else tuple(
            summarize(v) for v in value
        )
    if isinstance(value, dict):
        return {k: summarize(v) for k, v in value.items()}
    return value


class _Recorder(fx.Interpreter):
    """Real-tensor run (the fallback for graphs fake tensors cannot run): records every node's value."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm, garbage_collect_values=True)
        self.values: dict[str, Any] = {}

    def fetch_args_kwargs_from_env(self, n: fx.Node) -> tuple[tuple, dict[str, Any]]:
        return node_args(n, self.env.__getitem__)  # plain lists, as the generated forward passes

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        self.values[n.name] = summarize(result)
        return result


class _ShapeRun:
    """One pass over the graph: a shape formula (the op table's) where one applies, else the
    node's own code on fake tensors. Formula results are ``Meta``s, turned into fake tensors only when
    a fake-run node consumes them; the FLOP counter sees the fake runs, formulas count their own MACs."""

    def __init__(self, gm: fx.GraphModule, modules: dict[str, nn.Module], formulas: bool = True) -> None:
        self.gm = gm
        self.formulas = formulas
        self.modules = modules
        self.values: dict[str, Any] = {}
        self.macs = 0
        self._fakes: dict[int, torch.Tensor] = {}

    def run(self, inputs: tuple[Any, ...]) -> None:
        env: dict[fx.Node, Any] = {}
        pending = iter(inputs)
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                result = _placeholder(n, pending)
            elif n.op == "get_attr":
                result = _fetch(self.gm, str(n.target))
            else:
                args, kwargs = node_args(n, env.__getitem__)
                result = args[0] if n.op == "output" else self._call(n, args, kwargs)
            env[n] = result
            self.values[n.name] = summarize(result)

    def _call(self, n: fx.Node, args: tuple, kwargs: dict) -> Any:
        module = self.modules[n.target] if n.op == "call_module" else None
        formula = _formula_for(n, module) if self.formulas else None
        if formula is not None:
            call = Call(args, kwargs, module)
            try:
                result = formula(call)
            except Exception:  # a formula never decides failure: the real kernel below does
                result = None
            if result is not None:
                self.macs += call.macs
                return result
        args, kwargs = self._materialize(args), self._materialize(kwargs)
        if module is not None:
            return module(*args, **kwargs)
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        return n.target(*args, **kwargs)

    def _materialize(self, value: Any) -> Any:
        """Meta -> an empty fake tensor (one per Meta, shared by its consumers)."""
        if isinstance(value, Meta):
            fake = self._fakes.get(id(value))
            if fake is None:
                fake = self._fakes[id(value)] = torch.empty(value.shape, dtype=value.dtype, device=value.device)
            return fake
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            return type(value)(self._materialize(v) for v in value)
        if isinstance(value, dict):
            return {k: self._materialize(v) for k, v in value.items()}
        return value


def _formula_for(n: fx.Node, module: nn.Module | None) -> Any:
    if module is not None:
        if module._forward_hooks or module._forward_pre_hooks:
            return None  # a hook may change what the call returns
        return formula_for(type(module))
    key = Method(n.target) if n.op == "call_method" else n.target
    return formula_for(key)


def _placeholder(n: fx.Node, pending: Any) -> Any:
    """fx.Interpreter's placeholder semantics, with tensor inputs as Meta."""
    if str(n.target).startswith("*"):
        return [spec(x) or x for x in pending]
    try:
        x = next(pending)
    except StopIteration as exc:
        if n.args:
            return n.args[0]
        raise RuntimeError(f"expected an input for placeholder {n.target}") from exc
    return spec(x) or x


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


def propagate(gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> dict[str, Any]:
    """Node name -> summarized result (TensorInfo / Python value) for every node of ``gm``."""
    return propagate_counting(gm, example_inputs)[0]


def propagate_counting(gm: fx.GraphModule, example_inputs: tuple[Any, ...], *,
                       formulas: bool = True) -> tuple[dict[str, Any], int]:
    """``propagate`` plus the graph's multiply-accumulates (FLOPs / 2 of conv, linear, matmul, attention),
    counted in the same run. ``formulas=False`` runs every node on fake tensors (the reference the
    shape formulas are tested against)."""
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    level = fake_log.level
    fake_log.setLevel(logging.CRITICAL)  # a failing op is our error to report, not torch's log spew
    try:
        return _propagate_counting(gm, example_inputs, formulas)
    finally:
        fake_log.setLevel(level)


def _propagate_counting(gm: fx.GraphModule, example_inputs: tuple[Any, ...],
                        formulas: bool) -> tuple[dict[str, Any], int]:
    was_training = gm.training
    modules = dict(gm.named_modules(remove_duplicate=False))
    toggle = any(m.training for m in modules.values())  # eval() then train(False) is a no-op otherwise
    if toggle:
        _train(gm, modules, False)
    try:
        try:
            run = _ShapeRun(gm, modules, formulas)
            with FakeTensorMode(allow_non_fake_inputs=True, shape_env=None), \
                    FlopCounterMode(display=False) as counter, torch.no_grad():
                run.run(example_inputs)
            return run.values, int(counter.get_total_flops() // 2) + run.macs
        except Exception:
            recorder = _Recorder(gm)
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
        if toggle:
            _train(gm, modules, was_training)


def _train(gm: fx.GraphModule, modules: dict[str, nn.Module], mode: bool) -> None:
    """``gm.train(mode)``; when every module keeps nn.Module's own ``train`` and ``__setattr__`` that is
    exactly one attribute write per module, done here without the recursion."""
    if all(type(m).train is nn.Module.train and type(m).__setattr__ is nn.Module.__setattr__
           for m in modules.values()):
        for m in modules.values():
            object.__setattr__(m, "training", mode)
    else:
        gm.train(mode)


__all__ = ["TensorInfo", "propagate", "propagate_counting", "summarize"]
