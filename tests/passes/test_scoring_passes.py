"""The scoring passes: declared facts, results equal to the pure functions, channel scores aligned
with the groups, data requirements, configuration recorded, the user's model untouched."""

from __future__ import annotations

import pytest
import torch

import models_zoo
from graphprune.errors import GraphpruneError
from graphprune.passes import PASSES, PipelineError, run_pipeline
from graphprune.scoring import (
    channel_scores,
    class_balanced_batch,
    global_masks,
    px_scores,
    snip_scores,
    synflow_scores,
)
from graphprune.state import CompileState, Options
from passes import (
    AnalyzeChannels,
    ApplyMasks,
    Canonicalize,
    ScoreBnScale,
    ScoreFpgm,
    ScoreGrasp,
    ScorePx,
    ScoreRandom,
    ScoreSnip,
    ScoreSynflow,
    ScoreTaylor,
    ScoreWeightMagnitude,
    Trace,
)

pytestmark = pytest.mark.usefixtures("single_thread")

ALL = [ScoreRandom(), ScoreWeightMagnitude(), ScoreBnScale(), ScoreFpgm(), ScoreTaylor(), ScoreSnip(),
       ScoreGrasp(), ScoreSynflow(rounds=3), ScorePx(rounds=3, per_class=2)]


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(10, 3, 8, 8, generator=g), torch.arange(10) % 5) for _ in range(2)]


@pytest.fixture(scope="module")
def base():
    model, inputs = models_zoo.load("zoo:resnet20", input_size=8)
    state = CompileState("resnet20", model, inputs, Options(sparsity=0.8))
    state = run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])
    return model, state.with_(data=data())


def test_every_pass_is_registered_and_provides_both_granularities(base):
    model, state = base
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in ALL:
        assert PASSES[p.name] is type(p)
        out = run_pipeline(state, [p])
        criterion = out.artifacts[p.name]["criterion"]
        assert {f"scores:{criterion}", f"weight-scores:{criterion}"} == set(p.provides) <= out.facts
        weights = out.weight_scores[criterion]
        assert {n: tuple(s.shape) for n, s in weights.items()} == {
            n: tuple(w.shape) for n, w in out.gm.named_parameters() if n in weights}
        assert len(out.scores[criterion]) == len(state.channels.groups)
        assert all(len(s) == g.size for s, g in zip(out.scores[criterion], state.channels.groups))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_passes_equal_the_pure_functions(base):
    model, state = base
    out = run_pipeline(state, [ScoreSnip(batches=2), ScoreSynflow(rounds=2), ScorePx(rounds=2, per_class=2)])
    snip = snip_scores(model, state.data, batches=2)
    assert all(torch.allclose(out.weight_scores["snip"][n], snip[n]) for n in snip)
    syn = synflow_scores(model, (1, 3, 8, 8), density=0.2, rounds=2)
    assert all(torch.allclose(out.weight_scores["synflow"][n], syn[n]) for n in syn)
    x, y = class_balanced_batch(state.data, 2)
    assert y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    px = px_scores(model, x, density=0.2, rounds=2)
    assert all(torch.allclose(out.weight_scores["px"][n], px[n]) for n in px)
    for criterion in ("snip", "px"):
        want = channel_scores(state.channels.groups, out.weight_scores[criterion])
        assert all((a == b).all() for a, b in zip(out.scores[criterion], want))
    assert out.artifacts["score-px"]["batch"] == 10 and out.artifacts["score-px"]["density"] == pytest.approx(0.2)


def test_iterative_weight_scores_reproduce_the_iterative_masks(base):
    _, state = base
    out = run_pipeline(state, [ScorePx(rounds=4, per_class=2, density=0.05), ApplyMasks(criterion="px", density=0.05)])
    again = global_masks(out.weight_scores["px"], 0.05)
    assert all(torch.equal(again[n], m) for n, m in out.masks.items())
    layers = out.artifacts["apply-masks"]["layers"]
    assert min(layers.values()) > 0 and out.artifacts["apply-masks"]["density"] == pytest.approx(0.05, abs=1e-4)


def test_data_driven_passes_need_data_and_apply_masks_needs_its_criterion(base):
    _, state = base
    bare = state.with_(data=None)
    for p in (ScoreSnip(), ScoreGrasp(), ScoreTaylor(), ScorePx()):
        with pytest.raises(GraphpruneError, match=f"{p.name} needs data"):
            run_pipeline(bare, [p])
    assert ApplyMasks(criterion="snip").requires == {"traced", "weight-scores:snip"}
    with pytest.raises(PipelineError, match="weight-scores:px"):
        run_pipeline(state, [ApplyMasks(criterion="px")])
