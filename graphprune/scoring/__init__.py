"""Pruning criteria as pure functions: model (+ data) -> per-weight scores ``{weight fqn: tensor}``.

Every criterion scores the weights of convs and linears (``targets``); higher means keep. Per-weight
scores give irregular masks (``masks.global_masks``); summed over a pruning group's members they give
channel scores (``aggregate.channel_scores``). Nothing here writes to the model it is given: criteria
run on private copies (``targets.private_copy``, ``copies``). The passes in ``passes/score_*.py`` wrap
these functions and record their results in the compile state.
"""

from graphprune.scoring.aggregate import channel_scores
from graphprune.scoring.batches import class_balanced_batch
from graphprune.scoring.gradient import grasp_scores, snip_scores, taylor_scores
from graphprune.scoring.masks import (
    exponential_schedule,
    global_masks,
    iterate,
    iterate_within_layers,
    layer_densities,
    local_masks,
)
from graphprune.scoring.paths import PathScorer, path_count, px_scores, synflow_scores
from graphprune.scoring.targets import Masks, Scores, prunable_weights
from graphprune.scoring.weights import bn_scale_scores, fpgm_scores, geometric_median, magnitude_scores, random_scores

__all__ = ["Masks", "PathScorer", "Scores", "bn_scale_scores", "channel_scores", "class_balanced_batch",
           "exponential_schedule", "fpgm_scores", "geometric_median", "global_masks", "grasp_scores", "iterate",
           "iterate_within_layers", "layer_densities", "local_masks", "magnitude_scores", "path_count",
           "prunable_weights", "px_scores", "random_scores", "snip_scores", "synflow_scores", "taylor_scores"]
