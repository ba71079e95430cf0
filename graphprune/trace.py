"""Trace an nn.Module into a torch.fx GraphModule that the channel analysis can read.

Standard torch.nn layers stay ``call_module`` leaves (their parameters are then owned by one node, which
is what the per-op rule table keys on). timm and torchvision declare functions that fx must not trace
into (honoured: they stay calls) and modules to keep opaque for feature extraction. An opaque module
freezes every channel it touches, so we first trace *through* those modules and keep one opaque only
where tracing through it fails. Modules the user names as leaves are always kept opaque. A failure
that no declared leaf explains is re-raised as a TraceError (``trace_errors``) naming the innermost
module being traced, the model's source line, the untraceable pattern and the fixes that can work.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

import torch.fx as fx
from torch import nn
from torch.fx.proxy import ParameterProxy

from graphprune.codegen import deferred_graph_module
from graphprune.decompose import decomposition_for
from graphprune.errors import InputError
from graphprune.trace_errors import trace_error
from graphprune.trace_speedups import ParameterNames, cached_unpacking

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _framework_leaves() -> tuple[set[type], list[Callable[..., Any]]]:
    """Leaf module types and autowrap functions registered by timm (if imported: a model that uses timm
    code has imported it; importing timm ourselves would only cost time)."""
    if "timm" not in sys.modules:
        return set(), []
    try:
        from timm.layers import _fx as timm_fx
    except Exception:  # timm absent or broken: nothing to honour
        return set(), []
    return set(timm_fx.get_notrace_modules()), list(timm_fx.get_notrace_functions())


class GraphpruneTracer(fx.Tracer):
    """An fx Tracer that keeps standard and framework-declared layers as leaves and remembers the
    module path it is inside, so a failure can say where it happened."""

    def __init__(self, extra_leaves: Iterable[type] = (), opaque: Iterable[type] = (),
                 wrapped: Iterable[Callable[..., Any]] = ()) -> None:
        super().__init__(autowrap_functions=tuple(wrapped))
        self.leaf_types = tuple(set(opaque) | set(extra_leaves))
        self.user_leaves = tuple(extra_leaves)
        self.gp_path_stack: list[str] = []
        self.failed_stack: list[str] | None = None
        self.gp_parameters: ParameterNames | None = None

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        self.gp_parameters = ParameterNames(root) if isinstance(root, nn.Module) else None
        with cached_unpacking():
            return super().trace(root, concrete_args)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        """fx's own parameter proxying, with the parameter's name from a map instead of a search."""
        name = self.gp_parameters.name_of(attr_val) if isinstance(attr_val, nn.Parameter) and \
            self.gp_parameters is not None else None
        if name is None:
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        if name not in parameter_proxy_cache:
            factory = (lambda node: ParameterProxy(self, node, name, attr_val)) if self.param_shapes_constant else None
            parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {}, proxy_factory_fn=factory)
        return parameter_proxy_cache[name]

    def create_arg(self, a: Any) -> Any:
        """fx turns every dict into a plain dict; a dict subclass (OrderedDict, a ``ModelOutput``) is
        instead rebuilt by a call to its class, so the traced module returns the same type."""
        if isinstance(a, dict) and type(a) is not dict and not isinstance(a, fx.immutable_collections.immutable_dict):
            if all(isinstance(k, str) and k.isidentifier() for k in a):
                return self.create_node("call_function", type(a), (), super().create_arg(dict(a)))
            return self.create_node("call_function", type(a), (super().create_arg(list(a.items())),), {})
        return super().create_arg(a)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, self.leaf_types) or getattr(type(m), "graphprune_leaf", False):
            return True  # graphprune's own layers (masked conv/linear twins) have channel rules
        is_torch_nn = m.__module__.startswith("torch.nn") or m.__module__.startswith("torch.ao.nn")
        return is_torch_nn and not isinstance(m, _CONTAINERS)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        self.gp_path_stack.append(self.path_of_module(m))
        decomposed = None if isinstance(m, self.user_leaves) else decomposition_for(m)
        try:
            if decomposed is not None:  # traced inline, op by op, on the module's own parameters
                return decomposed(m, *args, **kwargs)
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_stack is None:  # innermost module first: the stack unwinds after this
                self.failed_stack = list(self.gp_path_stack)
            raise
        finally:
            self.gp_path_stack.pop()


def _declared_culprit(model: nn.Module, stack: list[str], declared: set[type]) -> type | None:
    """The nearest module on the failing stack whose type a framework declared opaque."""
    for path in reversed(stack):
        kind = type(model.get_submodule(path)) if path else type(model)
        if kind in declared:
            return kind
    return None


def defaults_beyond(model: nn.Module, num_inputs: int | None) -> dict[str, Any] | None:
    """Forward parameters the example inputs do not supply are traced as their defaults (an optional
    ``mask=None`` stays None rather than becoming a graph input that breaks ``if mask is not None``)."""
    if num_inputs is None:
        return None
    params = list(inspect.signature(model.forward).parameters.values())
    extra = params[num_inputs:]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in extra):
        return None
    if any(p.default is inspect.Parameter.empty for p in extra):
        raise InputError(f"example_inputs has {num_inputs} tensors but forward also requires "
                         f"{[p.name for p in extra if p.default is inspect.Parameter.empty]}")
    return {p.name: p.default for p in extra} or None


def trace(model: nn.Module, extra_leaves: Iterable[type] = (), concrete_args: dict | None = None,
          num_inputs: int | None = None) -> fx.GraphModule:
    """Symbolically trace ``model``. The returned GraphModule shares parameters with ``model``;
    callers that transform it must copy first."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, fx.GraphModule):
        return model
    if concrete_args is None:
        concrete_args = defaults_beyond(model, num_inputs)
    declared, wrapped = _framework_leaves()
    opaque: set[type] = set()
    while True:
        tracer = GraphpruneTracer(extra_leaves, opaque, wrapped)
        try:
            graph = tracer.trace(model, concrete_args=concrete_args)
            break
        except Exception as exc:
            culprit = _declared_culprit(model, tracer.failed_stack or [], declared - opaque)
            if culprit is None:
                raise trace_error(model, tracer.failed_stack, exc) from exc
            opaque.add(culprit)
    return deferred_graph_module(tracer.root, graph, type(model).__name__)


# nn.Module's own per-instance containers (parameters, buffers, submodules, every hook table, the
# non-persistent buffer names): a copy sharing one would change the original when written, e.g. a hook
# registered on the pruned model would fire on the user's.
MODULE_CONTAINERS = tuple(k for k, v in nn.Module().__dict__.items() if isinstance(v, (dict, set)))


def own_containers(clone: nn.Module, module: nn.Module) -> None:
    """Give ``clone`` (a shallow copy of ``module``) its own copy of each of ``module``'s containers; the
    values in them (tensors, hooks, submodules) stay shared."""
    state = clone.__dict__
    for key in MODULE_CONTAINERS:
        value = module.__dict__.get(key)
        if value is not None:
            state[key] = value.copy()  # dict, OrderedDict and set copy themselves, keeping their type


def private_hierarchy(module: nn.Module, *, owned_root: bool = False) -> nn.Module:
    """Shallow copies of every module with their own containers (``own_containers``): attribute writes,
    parameter replacement and hooks stay private while tensors are shared until replaced.

    ``owned_root``: the root is the caller's own object (a GraphModule ``trace`` just built), so only its
    dicts and children are made private. Copying a GraphModule goes through its ``__copy__``, which
    rebuilds it from the graph and regenerates its code (~0.1 s on EfficientNet-B7)."""
    clone = module if owned_root else _shallow_copy(module)
    own_containers(clone, module)
    clone.__dict__["_modules"] = {name: private_hierarchy(m) if m is not None else None
                                  for name, m in module._modules.items()}
    return clone


def _shallow_copy(module: nn.Module) -> nn.Module:
    """``copy.copy(module)`` without the pickle protocol's detour (a third of a trace's time on models
    with a thousand modules) wherever that gives the same object: a plain ``__dict__`` and no custom
    copy/reduce hooks."""
    cls = type(module)
    if getattr(cls, "__copy__", None) is not None or cls.__reduce_ex__ is not object.__reduce_ex__ \
            or cls.__reduce__ is not object.__reduce__ or cls.__new__ is not object.__new__ \
            or not hasattr(module, "__dict__") or hasattr(cls, "__slots__"):
        return copy.copy(module)
    clone = object.__new__(cls)
    clone.__dict__.update(module.__dict__)
    return clone

