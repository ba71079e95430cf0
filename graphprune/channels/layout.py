"""Layouts: which dims of a tensor carry channels, and which element sits at each index.

A dim absent from the layout carries no prunable channels (batch, spatial, tokens, or channels whose
origin the analysis does not know). Layouts are immutable; movement rules build new ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from graphprune.channels.elements import Ids


@dataclass(frozen=True)
class Layout:
    dims: Mapping[int, Ids] = field(default_factory=dict)

    def get(self, dim: int) -> Ids | None:
        return self.dims.get(dim)

    def __bool__(self) -> bool:
        return bool(self.dims)

    def all_ids(self) -> Iterator[Ids]:
        yield from self.dims.values()


EMPTY = Layout({})


def iter_layouts(value: object) -> Iterator[Layout]:
    """Every Layout inside a (possibly nested tuple/list/dict) layout value."""
    if isinstance(value, Layout):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from iter_layouts(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_layouts(v)
