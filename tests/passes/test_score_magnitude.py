"""score-magnitude: a channel's score is the summed L-p norm of every member slice of its group."""

from __future__ import annotations

import numpy as np
import pytest

from graphprune.passes import run_pass
from passes import ScoreMagnitude

pytestmark = pytest.mark.usefixtures("single_thread")


def test_score_magnitude_is_the_summed_member_norm(grouped, model) -> None:
    state = run_pass(grouped, ScoreMagnitude(p=1))
    group = next(g for g in grouped.channels.groups if g.num_prunable)
    score = state.scores["l1"][group.index]
    by_channel = {}
    for m in group.members:
        if m.fqn in dict(model.named_parameters()):
            t = dict(model.named_parameters())[m.fqn].detach()
            norms = t.abs().sum(dim=[d for d in range(t.ndim) if d != m.dim]) if t.ndim > 1 else t.abs()
            for i, ch in enumerate(m.channel):
                by_channel[int(ch)] = by_channel.get(int(ch), 0.0) + float(norms[i])
    np.testing.assert_allclose(score, [by_channel[i] for i in range(group.size)], rtol=1e-5)
