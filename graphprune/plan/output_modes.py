"""``[allocate] outputs``: what happens to the channels that reach each model output leaf.

``"keep"`` (the default) freezes them; ``"zero-fill"`` lets them be removed and scatters the output back
into zeros of its width (``graphprune.zero_fill``); a table names leaves (``graphprune.channels.outputs``
says how leaves are named), the others keep. Torch-free: the plan is read on the CLI's cheap paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MODES = ("keep", "zero-fill")


def outputs_expected(v: Any) -> str | None:
    """The plan check of ``[allocate] outputs``: None when fine, else what was expected."""
    if v in MODES or (isinstance(v, dict) and v and all(isinstance(k, str) and k and m in MODES for k, m in v.items())):
        return None
    return "'keep', 'zero-fill', or a table of output leaf name -> 'keep' | 'zero-fill'"


def mode_of(name: str, outputs: Any) -> str:
    """``"keep"`` or ``"zero-fill"`` for the leaf ``name`` under the option ``outputs``."""
    if isinstance(outputs, Mapping):
        return outputs.get(name, "keep")
    return outputs or "keep"
