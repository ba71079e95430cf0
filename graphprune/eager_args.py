"""The arguments of one fx node as eager Python would pass them.

fx stores a node's list and dict arguments as ``immutable_list`` / ``immutable_dict``, and
``fx.node.map_arg`` (which ``fx.Interpreter`` uses too) returns them in that form. The code a
GraphModule generates builds fresh plain lists and dicts instead, so a traced function that edits its
list argument (torchvision's ``_get_window_and_shift_size`` does) runs in the model but raises
"'immutable_list' object does not support mutation" when graphprune runs the graph node by node.
Every place that runs nodes one at a time fetches their arguments through ``node_args``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.fx as fx


def mutable(value: Any) -> Any:
    """``value`` with every list and dict (fx's immutable ones included) a fresh plain copy; tuples and
    other values are rebuilt only where they hold such a container."""
    if isinstance(value, list):
        return [mutable(v) for v in value]
    if isinstance(value, dict):
        return {k: mutable(v) for k, v in value.items()}
    if type(value) is tuple:
        return tuple(mutable(v) for v in value)
    return value


def node_args(node: fx.Node, value_of: Callable[[fx.Node], Any]) -> tuple[tuple, dict[str, Any]]:
    """``node``'s args and kwargs with every input node replaced by ``value_of(input)``, in plain
    mutable containers (a fresh copy per call: an edit by the callee never reaches the graph)."""
    args = fx.node.map_arg(node.args, value_of)
    kwargs = fx.node.map_arg(node.kwargs, value_of)
    return mutable(tuple(args)), mutable(dict(kwargs))


def map_values(arg: Any, value_of: Callable[[fx.Node], Any]) -> Any:
    """One argument (a node, literal or container of them) with nodes replaced, in plain containers."""
    return mutable(fx.node.map_arg(arg, value_of))


__all__ = ["map_values", "mutable", "node_args"]
