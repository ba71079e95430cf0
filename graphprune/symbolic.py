"""Size arguments as sympy expressions, so a rewrite keeps a pruned graph's dynamic sizes dynamic.

Why: a size a graph computes at run time (``x.size(0)``, ``aten.sym_size.int(x, 2)``) stays right for any
input size, but the channel count it is multiplied by is often a literal: torch.export writes ``c * h * w``
with ``c`` static as ``mul(mul(8, sym_size(x, 2)), sym_size(x, 3))``, and user code writes
``self.width * h * w``. When channels go, that argument must become ``4 * h * w``, not the number it
evaluates to at the example size (which would run only at that size).

Why scaling the whole expression is right: a reshape's size argument equals its output dim's size for
every input the dense graph accepts, and that dim is a block of the input's dims: static channel counts
times run-time sizes. Removal changes only the static part, so the argument is the same function of the
run-time sizes times a constant, ``new / current`` (its pruned and its would-be value at the example
sizes). The expression is read from the graph as sympy (one symbol per run-time size), scaled and
simplified, and emitted back as graph arithmetic."""

from __future__ import annotations

import builtins
import operator
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch
import torch.fx as fx

_ARITHMETIC = {operator.mul: sympy.Mul, operator.add: sympy.Add}


@dataclass
class SizeExpr:
    """A traced size as an expression; ``sources`` maps each symbol to the node that computes it."""

    expr: sympy.Expr
    sources: dict[sympy.Symbol, fx.Node] = field(default_factory=dict)


def is_run_time_size(node: Any) -> bool:
    """A node that reads one size of a tensor while the graph runs (it follows the input's size)."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_function" and node.target is torch.ops.aten.sym_size.int:
        return True
    if node.op == "call_method" and node.target == "size" and len(node.args) + len(node.kwargs) == 2:
        return True
    shape = node.args[0] if node.op == "call_function" and node.target is operator.getitem and node.args else None
    return isinstance(shape, fx.Node) and (
        shape.op == "call_function" and shape.target is builtins.getattr and shape.args[1] == "shape"
        or shape.op == "call_method" and shape.target == "size" and len(shape.args) == 1)


def size_expr(arg: Any) -> SizeExpr | None:
    """``arg`` (an int or a size-arithmetic node) as an expression, or ``None`` for what it cannot read."""
    if isinstance(arg, bool) or not isinstance(arg, (int, fx.Node)):
        return None
    if isinstance(arg, int):
        return SizeExpr(sympy.Integer(arg))
    if is_run_time_size(arg):
        symbol = sympy.Symbol(arg.name, integer=True, positive=True)
        return SizeExpr(symbol, {symbol: arg})
    if arg.op != "call_function" or arg.kwargs or len(arg.args) != 2:
        return None
    parts = [size_expr(a) for a in arg.args]
    if None in parts:
        return None
    a, b = parts
    sources = {**a.sources, **b.sources}
    if arg.target in _ARITHMETIC:
        return SizeExpr(_ARITHMETIC[arg.target](a.expr, b.expr), sources)
    if arg.target is operator.sub:
        return SizeExpr(a.expr - b.expr, sources)
    if arg.target is operator.floordiv:
        return SizeExpr(sympy.floor(a.expr / b.expr), sources)
    return None


def rescaled(size: SizeExpr, current: int, new: int) -> SizeExpr | None:
    """``size`` times ``new / current``: integer coefficients where they divide (``8*h*w`` to ``4*h*w``),
    else ``floor(size * new / current)``, exact since the product divides for every input size.
    ``None`` for a constant (a literal does) or a value of zero."""
    if not size.expr.free_symbols or current == 0:
        return None
    scaled = sympy.expand(size.expr * sympy.Rational(new, current))
    if not all(c.is_integer for c in scaled.as_coefficients_dict().values()):
        scaled = sympy.floor(size.expr * new / current, evaluate=False)
    return SizeExpr(scaled, size.sources)


def emit(graph: fx.Graph, size: SizeExpr) -> Any:
    """Graph arithmetic computing ``size`` (call inside ``graph.inserting_before``); an int if constant."""
    return _emit(graph, size.expr, size.sources)


def _emit(graph: fx.Graph, expr: sympy.Expr, sources: dict[sympy.Symbol, fx.Node]) -> Any:
    if expr.is_Integer:
        return int(expr)
    if expr.is_Symbol:
        return sources[expr]
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
        return _fold(graph, operator.mul, [_emit(graph, expr.base, sources)] * int(expr.exp))
    if isinstance(expr, sympy.floor):
        numerator, denominator = expr.args[0].as_numer_denom()
        return graph.call_function(operator.floordiv, (_emit(graph, numerator, sources),
                                                       _emit(graph, denominator, sources)))
    if expr.is_Mul or expr.is_Add:
        op = operator.mul if expr.is_Mul else operator.add
        return _fold(graph, op, [_emit(graph, a, sources) for a in expr.as_ordered_factors()]
                     if expr.is_Mul else [_emit(graph, a, sources) for a in expr.as_ordered_terms()])
    raise ValueError(f"cannot emit size expression {expr}")


def _fold(graph: fx.Graph, op: Any, parts: list[Any]) -> Any:
    result = parts[0]
    for part in parts[1:]:
        result = graph.call_function(op, (result, part))
    return result
