"""The model's interface and state, as the user sees them: what compile must give back unchanged.

- Example inputs are bound to ``forward``'s signature like a call would bind them: tensors (and
  containers holding tensors) become graph inputs in signature order; other values (flags, ``None``,
  sizes) are traced as constants.
- Tensor aliases: one parameter reachable under several names (tied embeddings, a conv weight shared by
  two layers) is one tensor. The analysis keys it by one canonical name so every use couples, and the
  removal gives every alias the same new tensor.
- State that ``forward`` never reads (an unused buffer or parameter) is not in a traced graph; it is put
  back so the pruned module's ``state_dict`` keeps every key of the user's.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from graphprune.errors import InputError


@dataclass(frozen=True)
class BoundInputs:
    """``traced``: the graph's inputs in placeholder order; ``constants``: the rest, for the tracer."""

    traced: tuple[Any, ...]
    constants: dict[str, Any]


def holds_tensor(value: Any) -> bool:
    return any(isinstance(leaf, torch.Tensor) for _, leaf in leaves(value))


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) for every leaf of a structure: tuples and lists (namedtuples included), dicts
    (OrderedDict, ``ModelOutput``) and dataclasses, nested; ``path`` reads like an index, ``[0]['out']``.
    Each container also yields its type at its own path, so two structures compare equal only when
    their types and keys match."""
    if isinstance(value, (tuple, list)):
        yield path, type(value)
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        yield path, (type(value), tuple(value))
        for k, v in value.items():
            yield from leaves(v, f"{path}[{k!r}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield path, type(value)
        for f in dataclasses.fields(value):
            yield from leaves(getattr(value, f.name), f"{path}.{f.name}")
    else:
        yield path, value


def bind_inputs(model: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> BoundInputs:
    """Bind ``args``/``kwargs`` to ``model.forward`` and split traced inputs from constants. A forward
    parameter left out keeps its default and is traced as that constant (``mask=None`` stays None)."""
    try:
        signature = inspect.signature(model.forward)
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InputError(f"example inputs do not fit {type(model).__name__}.forward{_signature(model)}: "
                         f"{exc}") from None
    traced, constants = [], {}
    for param in signature.parameters.values():
        if param.kind == param.VAR_POSITIONAL:  # passed on by position, as a call would
            traced.extend(bound.arguments.get(param.name, ()))
            continue
        if param.kind == param.VAR_KEYWORD:
            if bound.arguments.get(param.name):
                raise InputError(f"{type(model).__name__}.forward takes **{param.name}: give its example "
                                 f"inputs by position or as named forward parameters")
            continue
        if param.name not in bound.arguments:
            if param.default is inspect.Parameter.empty:
                raise InputError(f"example inputs leave '{param.name}' of {type(model).__name__}.forward "
                                 f"unset")
            constants[param.name] = param.default
            continue
        value = bound.arguments[param.name]
        if holds_tensor(value):
            traced.append(value)
        else:
            constants[param.name] = value
    if not traced:
        raise InputError("example inputs hold no tensor: give at least one example tensor")
    return BoundInputs(tuple(traced), constants)


def inline_constant_inputs(gm: fx.GraphModule, model: nn.Module, constants: Mapping[str, Any]) -> None:
    """Replace the placeholders fx made for constant arguments by their values, so the traced module
    takes exactly the traced inputs, in order (fx keeps a placeholder with a default per constant,
    which would shift a later tensor argument passed by position). A constant fx flattened into
    several placeholders leaves the graph as it is."""
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(params) != len(placeholders) or not constants:
        return
    for param, node in zip(params, placeholders):
        if param.name not in constants:
            continue
        value = constants[param.name]
        for user in list(node.users):
            user.args = fx.node.map_arg(user.args, lambda n, node=node, value=value: value if n is node else n)
            user.kwargs = fx.node.map_arg(user.kwargs, lambda n, node=node, value=value: value if n is node else n)
        gm.graph.erase_node(node)
    gm.recompile()


def _signature(model: nn.Module) -> str:
    try:
        return str(inspect.signature(model.forward))
    except (TypeError, ValueError):
        return "(...)"


def tensor_aliases(module: nn.Module) -> dict[str, str]:
    """Every parameter/buffer name that is not its tensor's first name -> that first (canonical) name,
    in ``named_parameters``' order, so the canonical names are the ones ``state_dict`` and ``kept`` use."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in _named_tensors(module):
        canonical = first.setdefault(id(tensor), name)
        if canonical != name:
            aliases[name] = canonical
    return aliases


def ties(aliases: Mapping[str, str]) -> list[list[str]]:
    """Groups of names of one shared tensor, canonical name first (for the report)."""
    groups: dict[str, list[str]] = {}
    for alias, canonical in aliases.items():
        groups.setdefault(canonical, [canonical]).append(alias)
    return [names for _, names in sorted(groups.items())]


def _named_tensors(module: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)


def restore_unused_state(gm: fx.GraphModule, model: nn.Module) -> list[str]:
    """Put every parameter/buffer of ``model`` that the traced ``gm`` lacks back at its path (a buffer
    as persistent or not, as registered), creating empty parent modules where the graph needs none.
    Returns the restored names. The tensors are the user's until compile's final copy."""
    present = {name for name, _ in _named_tensors(gm)}
    restored = []
    for name, tensor in _named_tensors(model):
        if name in present:
            continue
        path, _, attr = name.rpartition(".")
        source = model.get_submodule(path)
        owner = _ensure_module(gm, path)
        if attr in source._parameters:
            owner.register_parameter(attr, tensor)
        else:
            owner.register_buffer(attr, tensor, persistent=attr not in source._non_persistent_buffers_set)
        restored.append(name)
    return restored


def _ensure_module(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split(".") if path else ():
        child = module._modules.get(part)
        if child is None:
            child = nn.Module()
            module.add_module(part, child)
        module = child
    return module


__all__ = ["BoundInputs", "bind_inputs", "holds_tensor", "inline_constant_inputs", "leaves", "restore_unused_state",
           "tensor_aliases", "ties"]
