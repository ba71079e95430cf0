"""Structured aggregation: a channel's score sums the scores of every weight its removal deletes,
over all members of its pruning group (checked member by member on the residual zoo:resnet20)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models_zoo
from graphprune.passes import run_pipeline
from graphprune.scoring import channel_scores, fpgm_scores, random_scores
from graphprune.scoring.targets import output_dims
from graphprune.state import CompileState
from passes import AnalyzeChannels, Canonicalize, Trace

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def analysed():
    model, x = models_zoo.load("zoo:resnet20", input_size=8)
    return run_pipeline(CompileState("resnet20", model, x), [Trace(), Canonicalize(), AnalyzeChannels()])


def brute_force(group, scores, only_outputs=None, mean=False) -> np.ndarray:
    """Per channel, loop over members and sum the slice of every member index mapped to it."""
    out = np.zeros(group.size)
    for m in group.members:
        s = scores.get(m.fqn)
        if s is None or (only_outputs is not None and only_outputs[m.fqn] != m.dim):
            continue
        for position, channel in enumerate(m.channel):
            piece = s.select(m.dim, position)
            out[channel] += float(piece.mean() if mean else piece.sum())
    return out


def test_residual_group_sums_every_member(analysed):
    state = analysed
    scores = random_scores(state.gm, seed=3)
    got = channel_scores(state.channels.groups, scores)
    # the stage-1 residual group: stem conv, every block's conv2, and the consumers' input dims
    stage = max(state.channels.groups, key=lambda g: sum(m.fqn in scores for m in g.members))
    producers = {m.fqn for m in stage.members if m.fqn in scores and m.dim == 0}
    consumers = {m.fqn for m in stage.members if m.fqn in scores and m.dim == 1}
    assert len(producers) >= 3 and len(consumers) >= 3, (producers, consumers)
    for group, score in zip(state.channels.groups, got):
        np.testing.assert_allclose(score, brute_force(group, scores), rtol=1e-12)
    # and it is not just one member: dropping any producer changes the residual group's scores
    one = next(iter(producers))
    without = channel_scores([stage], {n: s for n, s in scores.items() if n != one})[0]
    idx = state.channels.groups.index(stage)
    np.testing.assert_allclose(got[idx] - without, brute_force(stage, {one: scores[one]}), rtol=1e-9)


def test_channel_level_criteria_read_output_members_once(analysed):
    state = analysed
    scores = fpgm_scores(state.gm)
    outputs = output_dims(state.gm)
    got = channel_scores(state.channels.groups, scores, outputs_only=outputs, reduce="mean")
    for group, score in zip(state.channels.groups, got):
        np.testing.assert_allclose(score, brute_force(group, scores, outputs, mean=True), rtol=1e-12)
    # a filter-level score is taken once per producing layer, not multiplied by the filter size
    group = state.channels.groups[0]
    producers = [m for m in group.members if m.fqn in scores and m.dim == 0]
    want = sum(float(scores[m.fqn].flatten(1)[0, 0]) for m in producers if m.channel[0] == 0)
    assert got[0][0] == pytest.approx(want)


def test_scores_of_another_shape_are_refused(analysed):
    state = analysed
    scores = random_scores(state.gm)
    name = next(iter(scores))
    scores[name] = torch.zeros(scores[name].shape[0] + 1, *scores[name].shape[1:])
    with pytest.raises(ValueError, match="predate a removal"):
        channel_scores(state.channels.groups, scores)
