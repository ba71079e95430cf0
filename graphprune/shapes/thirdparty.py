"""Shape formulas for functions that torchvision keeps opaque to fx (they stay ``call_function``)."""

from __future__ import annotations

from graphprune.shapes.registry import Call, formula, is_tensor

try:
    from torchvision.ops.stochastic_depth import stochastic_depth as _stochastic_depth
except ImportError:  # torchvision absent: nothing to register
    _stochastic_depth = None


def _eval_stochastic_depth(call: Call) -> object:
    """Outside training (or with p = 0) stochastic depth returns its input itself."""
    x, p = call.arg(0, "input"), call.arg(1, "p")
    mode, training = call.arg(2, "mode"), call.arg(3, "training", True)
    if not is_tensor(x) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0 or mode not in ("batch", "row"):
        return None
    return x if training is False or p == 0.0 else None


if _stochastic_depth is not None:
    formula([_stochastic_depth])(_eval_stochastic_depth)
