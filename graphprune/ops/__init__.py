"""The op families. Importing this package fills the op table (``graphprune.ops.registry``): each family
module declares its ops' channel rules, shape formulas, liveness kinds, resize and traits together.

Every module of the package is a family and is imported here, in name order, so a new family is one new
file: nothing else names it."""

import importlib
import pkgutil

FAMILIES = tuple(m.name for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
                 if m.name != "registry")
for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")
