"""The one-line UnknownModelError for a name that does not resolve, with the closest names suggested."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from graphprune.errors import UnknownModelError

LIST_HINT = "run `graphprune zoo` to list models"


def suggest(name: str, candidates: Iterable[str], prefix: str = "") -> str:
    """'; did you mean a, b?' for the closest candidates, or '' when none is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(prefix + m for m in matches)}?" if matches else ""


def unknown(spec: str, what: str, name: str, candidates: Iterable[str], prefix: str) -> UnknownModelError:
    return UnknownModelError(f"unknown model '{spec}': no {what} named '{name}'{suggest(name, candidates, prefix)} "
                             f"({LIST_HINT})")
