"""A rule's budget: ``{ macs = r }``, ``{ params = r }`` or ``{ latency = r }`` with its measurement
settings, read into a ``Budget``; every problem a one-line error at the key's location."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphprune.plan.checks import Check, boolean, number, one_of, positive_int

BUDGET_METRICS = ("macs", "params", "latency")
LATENCY_BACKENDS = ("cpu",)  # where a latency budget is measured: eager PyTorch on this machine's CPU
LATENCY_SETTINGS: dict[str, Check] = {"backend": one_of(*LATENCY_BACKENDS), "batch": positive_int,
                                      "threads": positive_int, "fresh_process": boolean}


@dataclass(frozen=True)
class Budget:
    metric: str  # "macs", "params" or "latency"
    ratio: float  # the fraction of the dense model's count (or measured time) the pruned model may keep
    backend: str = "cpu"  # latency only: where it is measured
    batch: int | None = None  # latency only: the batch size it is measured at (None: the example inputs')
    threads: int = 1  # latency only: intra-op threads while measuring
    fresh_process: bool = True  # latency only: time candidates in a fresh process (graphprune.latency_process)


def read_budget(value: dict[str, Any], path: str, fail: Callable[[str, str], Exception],
                unknown: Callable[[str, str, Any], Exception]) -> Budget:
    """``fail(path, message)`` and ``unknown(path, key, known)`` build the reader's located errors."""
    metrics = [k for k in value if k in BUDGET_METRICS]
    if not metrics and len(value) == 1:
        (key,) = value
        raise unknown(f"{path}.{key}", key, BUDGET_METRICS)
    if len(metrics) != 1:
        raise fail(path, f"expected exactly one of {', '.join(BUDGET_METRICS)}, got {value!r}")
    metric = metrics[0]
    ratio = value[metric]
    settings = LATENCY_SETTINGS if metric == "latency" else {}
    for key in value:
        if key != metric and key not in settings:
            raise unknown(f"{path}.{key}", key, (metric, *settings))
    expected = number(0, 1, lo_open=True)(ratio)
    if expected:
        what = "measured latency" if metric == "latency" else metric
        raise fail(f"{path}.{metric}", f"expected {expected} (the fraction of the dense model's {what} to keep), "
                                       f"got {ratio!r}")
    for key, check in settings.items():
        if key in value and check(value[key]):
            raise fail(f"{path}.{key}", f"expected {check(value[key])}, got {value[key]!r}")
    return Budget(metric, float(ratio), **{k: value[k] for k in settings if k in value})


def latency_rule(plan: Any) -> Any:
    """The plan's rule with a latency budget (a ``PruneRule``), or None: the scheduler adds ``fuse`` for
    it and ``graphprune.compile`` meets it by measurement."""
    return next((r for r in plan.rules if r.budget is not None and r.budget.metric == "latency"), None)


def layout_of(plan: Any) -> str:
    """The memory format the plan asks for the result: ``[emit] layout``, else ``"auto"`` (the faster of
    contiguous and channels-last, measured) under a latency budget, else the module's own."""
    if plan.emit.layout is not None:
        return plan.emit.layout
    return "auto" if latency_rule(plan) is not None else "contiguous"
