"""Shape formulas for common ops (see ``registry``); importing the package fills the table."""

from graphprune.shapes import layers, ops, thirdparty  # noqa: F401  (fill FORMULAS)
from graphprune.shapes.registry import FORMULAS, Call, Meta, spec

__all__ = ["FORMULAS", "Call", "Meta", "spec"]
