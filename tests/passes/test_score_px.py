"""score-px: the pass defaults to the reference PX of the paper's code (the data copy computes with the
keep mask, 100 rounds; the formula itself: tests/scoring/test_px_reference.py), and one round scores the
class-balanced batch it takes from the state's data (the first ``per_class`` examples of each class) on
the model masked by the state's masks. Without masks the batch only scales PX (every output gets the same
data path sum), so the masks are what make the batch visible in the scores."""

from __future__ import annotations

import pytest
import torch

from graphprune.passes import run_pass, run_pipeline
from graphprune.state import CompileState, Options
from passes import AnalyzeChannels, Canonicalize, ScorePx, Trace
from tests.scoring.test_px_reference import assert_proportional, hand_px, mlp, random_masks

pytestmark = pytest.mark.usefixtures("single_thread")


def test_score_px_pass_defaults_to_the_reference_data_copy_and_100_rounds():
    from passes import ScorePx

    assert ScorePx().masked_data_copy is True and ScorePx().rounds == 100


def test_one_round_scores_the_class_balanced_batch_on_the_masked_model() -> None:
    net, ops, x = mlp()
    labels = torch.tensor([2, 0, 0, 1, 2, 0, 1, 1, 2, 0])
    data = [(x[:5], labels[:5]), (x[5:], labels[5:])]
    masks = random_masks(net, 0.6, seed=0)
    state = run_pipeline(CompileState("mlp", net, (x[:1],), Options(sparsity=0.5), data=data, masks=masks),
                         [Trace(), Canonicalize(), AnalyzeChannels()])
    out = run_pass(state, ScorePx(rounds=1, per_class=2))
    balanced = x[[1, 2, 3, 6, 0, 4]]  # classes 0, 1, 2: the first two of each, in data order
    weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
    want = hand_px(weights, list(masks.values()), ops, balanced)
    assert_proportional(out.weight_scores["px"], want)
    assert out.artifacts["score-px"]["batch"] == 6 and out.artifacts["score-px"]["per_class"] == 2
