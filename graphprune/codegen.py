"""Regenerate a GraphModule's Python only when its graph would now print differently.

Why: ``GraphModule.recompile`` prints the graph and then byte-compiles the source; on a model with
a thousand nodes the byte-compile alone is ~20 ms, and channel removal usually leaves the graph's
text unchanged (module attributes are read at run time; only ops with baked sizes are rewritten).
Printing is a third of the cost, and comparing the printed source plus the objects its names bind
is exact: identical source over identical globals is the identical function.
"""

from __future__ import annotations

import torch.fx as fx


def recompile_if_changed(gm: fx.GraphModule) -> bool:
    """``gm.recompile()`` unless the graph's code and globals equal what ``gm`` already runs.
    Returns whether it recompiled."""
    forward = type(gm).__dict__.get("forward")
    current = getattr(forward, "__globals__", None)
    if current is not None and getattr(gm, "_code", None) is not None:
        fresh = gm.graph.python_code(root_module="self")
        if fresh.src == gm._code and all(current.get(k, _MISSING) is v for k, v in fresh.globals.items()):
            return False
    gm.recompile()
    return True


_MISSING = object()
