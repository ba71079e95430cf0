"""Value checks for plan keys: each returns None when a value is fine, else what was expected (the
plan reader turns that into a one-line error naming the key's location)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]  # None when the value is fine, else what was expected


def number(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"

    def check(v: Any) -> str | None:
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
              and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi))
        return None if ok else f"a number in {left}{lo}, {hi}{right}"
    return check


def positive_int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "a positive integer"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else "one of " + ", ".join(repr(c) for c in choices)
