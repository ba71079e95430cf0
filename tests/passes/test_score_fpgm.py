"""score-fpgm: a filter scores its distance to the geometric median of its layer's filters (a filter
near the median is replaceable by the others), or with ``approximate`` its summed distance to all of
them; the score is broadcast over the filter and a channel takes its producing filter's score once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from graphprune.passes import run_pass
from passes import ScoreFpgm
from tests.passes.tiny_graph import hidden

pytestmark = pytest.mark.usefixtures("single_thread")


def test_filters_score_their_distance_to_the_geometric_median(grouped) -> None:
    rows = grouped.gm.conv1.weight.detach().double().flatten(1).numpy()

    def total(z: np.ndarray) -> float:
        return float(np.linalg.norm(rows - z, axis=1).sum())

    best = minimize(total, rows.mean(0), method="BFGS", options={"gtol": 1e-12})
    state = run_pass(grouped, ScoreFpgm())
    distance = state.scores["fpgm"][hidden(grouped).index]
    assert distance.sum() <= best.fun + 1e-9  # distances to a point at least as central as the minimiser's
    np.testing.assert_allclose(distance, np.linalg.norm(rows - best.x, axis=1), rtol=1e-4)
    weights = state.weight_scores["fpgm"]["conv1.weight"]
    assert torch.equal(weights, weights[:, :1, :1, :1].expand_as(weights))  # one score per filter
    np.testing.assert_allclose(weights[:, 0, 0, 0].numpy(), distance, rtol=1e-12)
    assert state.artifacts["score-fpgm"]["approximate"] is False


def test_approximate_scores_the_summed_distance_to_every_filter(grouped) -> None:
    rows = grouped.gm.conv1.weight.detach().double().flatten(1).numpy()
    summed = [sum(float(np.linalg.norm(rows[i] - rows[j])) for j in range(len(rows))) for i in range(len(rows))]
    state = run_pass(grouped, ScoreFpgm(approximate=True))
    np.testing.assert_allclose(state.scores["fpgm"][hidden(grouped).index], summed, rtol=1e-10)
    assert state.artifacts["score-fpgm"]["approximate"] is True
