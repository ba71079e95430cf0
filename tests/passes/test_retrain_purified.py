"""retrain-purified: reports the conv compression before and after purification + unused-path removal
(P-RM) apart from ADMM's, retrains (masked) only when P-RM changed the model; the structadmm recipe runs
progressive ADMM, purification with thresholds, the fixed point and this retraining."""

from __future__ import annotations

import pytest
import torch

import models_zoo
from graphprune.conv_census import conv_census
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from passes import Admm, AnalyzeChannels, Canonicalize, Purify, RemoveChannels, Trace
from passes.retrain_purified import RetrainPurified
from passes.unused_paths import purify_to_fixed_point

pytestmark = pytest.mark.usefixtures("single_thread")


def admm_state(structure: str):
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(3)]
    state = run_pipeline(CompileState("m", model, (data[0][0][:1],), Options(sparsity=0.5)),
                         [Trace(), Canonicalize(), AnalyzeChannels()]).with_(data=data)
    return run_pipeline(state, [Admm(structure=structure, iterations=1, retrain_epochs=0, progress=False),
                                RemoveChannels()])


def test_prm_is_reported_apart_and_retrained_when_it_removed_something():
    state = admm_state("shape")
    purified = purify_to_fixed_point(run_pipeline(state, [Purify(eta=0.4, sigma=1e9)]))
    out = run_pipeline(purified, [RetrainPurified(epochs=1, progress=False, lr=0.01)])
    prm = out.artifacts["prm"]
    assert prm["before"] == conv_census(state.gm)  # what purify saw: ADMM's result after its own removal
    assert prm["after"] == conv_census(purified.gm) and prm["after"]["conv_params"] < prm["before"]["conv_params"]
    assert prm["compression_after"]["physical"] > prm["compression_before"]["physical"]
    assert prm["compression_before"]["physical"] == pytest.approx(
        conv_census(state.model)["conv_params"] / prm["before"]["conv_params"], rel=1e-3)
    assert prm["changed"] and prm["retrained_epochs"] == 1 and prm["retrain"]["steps"] == 3
    assert not all(torch.equal(a, b) for a, b in zip(out.gm.parameters(), purified.gm.parameters()))
    for fqn, mask in out.masks.items():  # masked: mask-level zeros stay zero through the retraining
        assert not out.gm.get_parameter(fqn).detach()[~mask].any()


def test_nothing_purified_means_no_retraining():
    state = admm_state("group")
    out = run_pipeline(purify_to_fixed_point(run_pipeline(state, [Purify()])), [RetrainPurified(progress=False)])
    prm = out.artifacts["prm"]
    assert not prm["changed"] and prm["retrained_epochs"] == 0 and prm["retrain"] is None
    assert prm["before"] == prm["after"] == state.artifacts["admm"]["census"]
    assert all(torch.equal(a, b) for a, b in zip(out.gm.parameters(), state.gm.parameters()))


def test_structadmm_recipe_runs_progressive_admm_purification_and_retraining():
    from graphprune.plan import load_plan
    from graphprune.plan.recipes import recipe_path
    from graphprune.scheduler import FixedPoint, schedule

    plan = load_plan(recipe_path("structadmm"))
    steps = schedule(plan).steps
    names = [s.pass_.name if not isinstance(s, FixedPoint) else "fixed-point" for s in steps]
    assert names.index("admm") < names.index("purify") < names.index("fixed-point") < names.index("retrain-purified")
    passes = {s.pass_.name: s.pass_ for s in steps if not isinstance(s, FixedPoint)}
    assert len(passes["admm"].progressive) >= 2 and passes["admm"].structure == "group"
    assert passes["purify"].eta is not None and passes["purify"].sigma is not None
    assert passes["retrain-purified"].epochs > 0
