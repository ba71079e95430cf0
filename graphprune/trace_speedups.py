"""Speed-ups for torch.fx symbolic tracing that leave the traced graph unchanged.

* Unpacking a proxy (``n, c, h, w = x.shape``, ``q, k, v = w.chunk(3)``) makes fx disassemble the whole
  calling function to find the ``UNPACK_SEQUENCE`` count, every time (~7 ms on a large forward).
  ``cached_unpacking`` disassembles each code object once per trace.
* A parameter read in traced code makes fx search ``root.named_parameters()`` for its name, every time.
  ``ParameterNames`` answers from a map built once and checks the answer against the module.
"""

from __future__ import annotations

import dis
import inspect
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType
from typing import Any

from torch import nn
from torch.fx.proxy import Proxy


@contextmanager
def cached_unpacking() -> Iterator[None]:
    """While active, ``Proxy.__iter__`` reads each calling code object's instructions from a cache
    (same decision as fx's own: ``UNPACK_SEQUENCE n`` yields ``n`` items, else ``tracer.iter``)."""
    original = Proxy.__iter__
    cache: dict[CodeType, tuple[list[int], list[dis.Instruction]]] = {}

    def __iter__(self: Proxy) -> Iterator[Proxy]:
        calling = inspect.currentframe().f_back
        code = calling.f_code
        if code not in cache:
            instructions = list(dis.get_instructions(code))
            cache[code] = ([i.offset for i in instructions], instructions)
        offsets, instructions = cache[code]
        inst = instructions[bisect_left(offsets, calling.f_lasti)]
        if inst.opname == "UNPACK_SEQUENCE":
            return (self[i] for i in range(inst.argval))
        return self.tracer.iter(self)

    Proxy.__iter__ = __iter__
    try:
        yield
    finally:
        Proxy.__iter__ = original


class ParameterNames:
    """``root.named_parameters()`` as a map from tensor identity to its (first) name."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self._names: dict[int, str] | None = None

    def name_of(self, param: Any) -> str | None:
        """The name fx's linear search would find, or None when the map cannot vouch for it."""
        if self._names is None:
            self._names = {id(p): n for n, p in self.root.named_parameters()}
        name = self._names.get(id(param))
        if name is None:
            return None
        return name if _lookup(self.root, name) is param else None


def _lookup(root: nn.Module, name: str) -> Any:
    """The parameter ``name`` read from the module dicts (getattr is patched while tracing)."""
    *path, leaf = name.split(".")
    module: Any = root
    for atom in path:
        module = module.__dict__.get("_modules", {}).get(atom)
        if module is None:
            return None
    return module.__dict__.get("_parameters", {}).get(leaf)
