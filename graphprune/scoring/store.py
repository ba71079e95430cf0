"""How a scoring pass records its result in the compile state: per-weight scores under
``weight_scores[criterion]``, per-group channel scores under ``scores[criterion]`` and a small
JSON-able artifact (criterion, scored weights, seconds, configuration) for the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from graphprune.errors import GraphpruneError
from graphprune.scoring.aggregate import channel_scores
from graphprune.scoring.targets import Masks, Scores, output_dims
from graphprune.state import CompileState


def state_masks(state: CompileState) -> Masks | None:
    """Masks already in the state (restricted to scored weights), so criteria re-score the masked model."""
    return dict(state.masks) or None


def need_data(state: CompileState, pass_name: str) -> None:
    """Data-driven criteria read ``state.data``; it is configuration, not a fact a pass provides."""
    if state.data is None:
        raise GraphpruneError(f"{pass_name} needs data: pass graphprune.compile(..., data=batches) or a "
                              f"[data] table in the plan (an iterable of (input, target) batches)")


def density_for(state: CompileState, density: float | None) -> float:
    """The configured density, or ``1 - options.sparsity``."""
    return density if density is not None else 1.0 - state.options.sparsity


def record(state: CompileState, pass_name: str, criterion: str, compute: Callable[[], Scores],
           channel_level: bool = False, **config: Any) -> CompileState:
    start = time.perf_counter()
    scores = compute()
    seconds = time.perf_counter() - start
    outputs = output_dims(state.gm) if channel_level else None
    per_group = channel_scores(state.channels.groups, scores, outputs_only=outputs,
                               reduce="mean" if channel_level else "sum")
    artifact = {"criterion": criterion, "weights": int(sum(s.numel() for s in scores.values())),
                "tensors": len(scores), "seconds": round(seconds, 4), **config}
    return state.with_(scores={**state.scores, criterion: per_group},
                       weight_scores={**state.weight_scores, criterion: scores},
                       artifacts={**state.artifacts, pass_name: artifact})
