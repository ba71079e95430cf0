"""Which input sizes an exported graph keeps dynamic: the request (``Dim.AUTO`` per dim) and the record
of what torch.export made of it.

Why ``Dim.AUTO`` rather than named dims: graphprune cannot know which sizes a model lets vary; ``AUTO``
asks torch.export to keep a dim symbolic where the model allows and to specialise it where the code fixes
it (a channel count a weight reads, a position table's length) instead of failing.

Which dims (``dynamic``):
- ``"auto"`` (default): the batch (dim 0 of every tensor input) and every dim of an integer input (token
  ids, attention masks, positions: the sequence length). Spatial dims of float inputs stay at the example
  size: image models mostly fix them (position embeddings, windows), and reasoning about them symbolically
  is what makes export slow (Hugging Face Swin: 1.6 s static, 3.5 s with a dynamic batch, 188 s with
  every dim dynamic, measured under load on 2 cores).
- ``"all"``: every dim (an image side, an audio length too).
- ``"static"``: none; the graph runs at the example sizes only.
Dims of size 0 or 1 are left static: torch.export specialises them anyway (and warns), since it assumes a
symbolic size is at least 2."""

from __future__ import annotations

from typing import Any

import torch
from torch.export import Dim
from torch.utils import _pytree as pytree


def integer_like(value: Any) -> bool:
    """A tensor of ids, positions or masks (integer or bool): every dim of it may be a sequence length.
    The one test both the export request (here) and the emitted file's length check
    (``graphprune.export_batch``) use, so a bool attention mask varies with the tokens it masks."""
    return isinstance(value, torch.Tensor) and not (value.dtype.is_floating_point or value.dtype.is_complex)


def auto_dims(args: tuple[Any, ...], kwargs: dict[str, Any], dynamic: str) -> dict[str, Any] | tuple[Any, ...]:
    """``dynamic_shapes`` for ``torch.export.export(model, args, kwargs)``: the dims ``dynamic`` names, AUTO."""
    def spec(value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return None
        every = dynamic == "all" or integer_like(value)
        dims = range(value.ndim) if every else range(min(value.ndim, 1))
        return {d: Dim.AUTO for d in dims if value.shape[d] > 1} or None

    if not kwargs:
        return tuple(pytree.tree_map(spec, a) for a in args)
    return {name: pytree.tree_map(spec, value) for name, value in kwargs.items()} if not args else \
        (*(pytree.tree_map(spec, a) for a in args), *(pytree.tree_map(spec, v) for v in kwargs.values()))


def dynamic_sizes(exported: torch.export.ExportedProgram, static_why: str | None) -> dict[str, Any]:
    """``{"dynamic_dims": [{"input", "dim", "symbol", "min", "max"}, ...]}`` for each input dim the graph
    reads at run time (``max`` ``None``: unbounded), and ``"static"``: why there are none, if asked."""
    ranges = exported.range_constraints
    dims = []
    user = set(exported.graph_signature.user_inputs)
    for node in exported.graph_module.graph.nodes:
        if node.op != "placeholder" or node.name not in user:
            continue
        value = node.meta.get("val")
        for d, size in enumerate(getattr(value, "shape", ())):
            expr = size.node.expr if isinstance(size, torch.SymInt) else None
            if expr is not None and expr.free_symbols:
                bounds = ranges.get(expr)
                dims.append({"input": node.name, "dim": d, "symbol": str(expr),
                             "min": _bound(bounds and bounds.lower), "max": _bound(bounds and bounds.upper)})
    record: dict[str, Any] = {"dynamic_dims": dims}
    if static_why:
        record["static"] = static_why
    return record



def _bound(value: Any) -> int | None:
    """A range end as an int; ``None`` for none or an unbounded end (torch's ``int_oo`` claims to be a
    finite integer to sympy, so only a true sympy ``Integer`` counts)."""
    return int(value) if value is not None and getattr(value, "is_Integer", False) else None
