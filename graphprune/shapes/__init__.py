"""Shape machinery (``registry``): what op families' shape formulas consume and produce. The formulas
are declared in the op table by the family modules (``graphprune.ops``; look one up with
``graphprune.ops.registry.formula_for``). Importing this package imports no op family."""

from graphprune.shapes.registry import Call, Meta, spec

__all__ = ["Call", "Meta", "spec"]
