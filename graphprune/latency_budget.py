"""Meeting a latency budget: compile, measure, refit, compile again.

``budget = { latency = r }`` asks for a pruned model whose measured time is ``r`` of the dense model's,
within ``LATENCY_TOLERANCE`` (5 %) either way, on the budget's backend (eager PyTorch on this CPU), at
its batch size and thread count. The loop aims for ``ACCEPT_WITHIN`` (2 %), so that a measurement in
another process, whose noise is a few per cent, still lands inside. No cost model knows the time in
advance (docs/latency.md), so it is met by measurement: the per-op model (``graphprune.latency_model``)
predicts the proportional part of a candidate's time, and every compile is timed against the dense
model (round-robin, the median over rounds of the per-round ratio, robust to load that drifts). The
relation measured = a + b x predicted is fitted over the compiles so far (from one compile, with
b = 1 - a: a fixed share a that removal does not shrink) and the next compile searches the prediction
that fit says gives ``r``; once compiles measured below and above ``r`` exist, the search bisects
between them (measured time jumps with some widths: a fit alone can oscillate across a jump). The
profile of the first compile is reused, so every compile ranks candidates on one model. At most
``MAX_COMPILES``; the result is the compile measured closest to ``r``, and the report's ``budget``
says what was asked, each compile's target, prediction and measurement, and whether the tolerance
was met (a miss is also a warning: never silently off budget).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

CALIBRATION = "latency-calibration"  # the artifact a compile reads its target and profile from
RESULT = "latency-budget"  # the artifact the loop leaves on the returned state
LATENCY_TOLERANCE = 0.05
ACCEPT_WITHIN = 0.02  # the loop stops inside this band, so a re-measurement elsewhere has the rest as margin
MAX_COMPILES = 8


def next_target(history: Sequence[dict[str, float]], asked: float) -> float:
    """The prediction to search for next. Once two compiles bracket ``asked`` (one measured below, one
    above), the midpoint of the closest bracketing targets: measured time is not smooth in the widths
    (a depthwise conv's kernel changes with its channel count, docs/latency.md), and bisection narrows
    to where it crosses ``asked`` whatever its shape. Before that, fit measured = a + b x predicted
    (least squares; one point: b = 1 - a) and solve for ``asked``; a degenerate fit (b <= 0) scales
    the last prediction instead."""
    below = [h for h in history if h["measured"] < asked]
    above = [h for h in history if h["measured"] >= asked]
    if below and above:
        low = max(below, key=lambda h: h["target"])  # the largest target measured below
        high = min(above, key=lambda h: abs(h["target"] - low["target"]))
        return min(1.0, max(1e-3, (low["target"] + high["target"]) / 2))
    points = [(h["predicted"], h["measured"]) for h in history]
    if len(points) == 1:
        p, m = points[0]
        a = (m - p) / (1 - p) if p < 1 else 0.0
        b = 1 - a
    else:
        mp, mm = statistics.fmean(p for p, _ in points), statistics.fmean(m for _, m in points)
        spread = sum((p - mp) ** 2 for p, _ in points)
        b = sum((p - mp) * (m - mm) for p, m in points) / spread if spread > 0 else 0.0
        a = mm - b * mp
    if b <= 0:
        p, m = points[-1]
        return min(1.0, max(1e-3, p * asked / max(m, 1e-6)))
    return min(1.0, max(1e-3, (asked - a) / b))


def meet_latency(compile_once: Callable[[dict[str, Any]], Any], time_pair: Callable[[Any], float],
                 budget: Any) -> Any:
    """Compile (``compile_once(artifacts)`` -> state), measure (``time_pair(state)`` -> fraction), refit,
    until the measured fraction is within the tolerance of ``budget.ratio``; returns the closest state
    with the loop's record under ``RESULT``."""
    asked = budget.ratio
    history: list[dict[str, float]] = []
    calibration: dict[str, Any] = {}
    best: tuple[float, Any] | None = None
    for _ in range(MAX_COMPILES):
        state = compile_once({CALIBRATION: calibration} if calibration else {})
        record = _allocate_budget(state)
        measured = time_pair(state)
        history.append({"target": record["target"], "predicted": record["estimated"],
                        "measured": round(measured, 4)})
        if best is None or abs(measured - asked) < abs(best[0] - asked):
            best = (measured, state)
        if abs(measured - asked) <= ACCEPT_WITHIN * asked:
            break
        if any(abs(record["estimated"] - h["predicted"]) < 1e-4 for h in history[:-1]):
            break  # the same model as an earlier compile: the plan allows no other (a frozen floor)
        target = next_target(history, asked)
        if any(abs(target - h["target"]) < 1e-4 for h in history):
            break  # the search has nothing new to try
        calibration = {"profile_ms": record["profile_ms"], "target": target}
    assert best is not None
    measured, state = best
    result = {"metric": "latency", "asked": asked, "backend": budget.backend, "batch": budget.batch,
              "threads": budget.threads, "achieved": round(measured, 4),
              "within_tolerance": abs(measured - asked) <= LATENCY_TOLERANCE * asked,
              "tolerance": LATENCY_TOLERANCE, "compiles": history}
    kept = {k: v for k, v in state.artifacts.items() if k != CALIBRATION}  # the loop's input, not a result
    return state.with_(artifacts={**kept, RESULT: result})


def _allocate_budget(state: Any) -> dict[str, Any]:
    for record in state.artifacts.get("allocate", {}).values():
        if record.get("budget", {}).get("metric") == "latency":
            return record["budget"]
    raise RuntimeError("a latency budget compile ran no allocate pass with that budget")
