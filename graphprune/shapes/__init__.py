"""Shape formulas for common ops (see ``registry``); importing the package declares them in the op table."""

from graphprune.shapes import layers, ops  # noqa: F401  (declare the formulas)
from graphprune.shapes.registry import Call, Meta, formula_for, spec

__all__ = ["Call", "Meta", "formula_for", "spec"]
