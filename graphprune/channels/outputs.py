"""The model's output leaves, by name, and what the plan says about each (``[allocate] outputs``).

An output leaf's shape is the model's contract. By default (``"keep"``) every channel that reaches a leaf
is frozen. ``"zero-fill"`` lets those channels be removed: the pruned graph computes the narrow tensor
and scatters it back into zeros of the original width at the output (``graphprune.zero_fill``), so the
leaf keeps its shape and a removed channel reads zero there, as in the masked dense model.

A leaf is named by its path in the output structure, keys and positions joined by dots:
``last_hidden_state``, ``logits``, ``0``, ``1.out``; a model returning one tensor has the leaf ``output``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from graphprune.errors import PlanError

SINGLE = "output"  # the name of the leaf of a model that returns one tensor


@dataclass(frozen=True)
class OutputLeaf:
    name: str
    holder: fx.Node  # the node whose arguments hold the leaf: the output node or a container call
    node: fx.Node


def is_container_class(target: Any) -> bool:
    """A call that only packs tensors into a structure: a dict or tuple subclass (OrderedDict,
    ``ModelOutput``, a namedtuple) or a dataclass, built where a model returns it."""
    return isinstance(target, type) and (issubclass(target, (dict, tuple)) or dataclasses.is_dataclass(target))


def output_leaves(graph: fx.Graph) -> list[OutputLeaf]:
    """Every graph node the output returns as a leaf, with its name and holder, in output order."""
    output = next(n for n in reversed(graph.nodes) if n.op == "output")
    return list(_walk(output.args[0], "", output))


def _walk(value: Any, path: str, holder: fx.Node) -> Iterator[OutputLeaf]:
    if isinstance(value, fx.Node) and value.op == "call_function" and is_container_class(value.target):
        yield from _items(_fields(value), path, value)
    elif isinstance(value, (tuple, list)):
        yield from _items(enumerate(value), path, holder)
    elif isinstance(value, dict):
        yield from _items(value.items(), path, holder)
    elif isinstance(value, fx.Node):
        yield OutputLeaf(path or SINGLE, holder, value)


def _items(items: Any, path: str, holder: fx.Node) -> Iterator[OutputLeaf]:
    for key, v in items:
        yield from _walk(v, f"{path}.{key}" if path else str(key), holder)


def _fields(node: fx.Node) -> Any:
    """A container call's (field, value) pairs, as ``analysis.structure_layout`` reads them."""
    if node.kwargs:
        return node.kwargs.items()
    if len(node.args) == 1 and isinstance(node.args[0], (list, tuple)) and issubclass(node.target, dict):
        return node.args[0]
    return enumerate(node.args)


def check_outputs(graph: fx.Graph, outputs: Any, plan: Any = None) -> None:
    """A table naming a leaf the model does not return is a plan error naming the leaves it does."""
    if not isinstance(outputs, Mapping):
        return
    names = [leaf.name for leaf in output_leaves(graph)]
    unknown = [k for k in outputs if k not in names]
    if unknown:
        message = (f"the model's output has no leaf {unknown[0]!r} (its leaves: "
                   f"{', '.join(names) or 'none'})")
        raise plan.error("allocate.outputs", message) if plan is not None else PlanError(f"outputs: {message}")
