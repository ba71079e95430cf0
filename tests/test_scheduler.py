"""The scheduler: pipelines derived from goals, ordering, cycles, unsatisfiable facts, pinned pipelines,
re-run analyses, fixed-point loops; the pass protocol's fingerprints, entry points and torch.fx
PassManager integration."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from torch.fx.passes.infra.pass_manager import PassManager

import graphprune
from graphprune.errors import PlanError
from graphprune.fx_adapter import fx_passes
from graphprune.passes import PASSES, Pass, load_entry_points
from graphprune.plan import load_plan
from graphprune.scheduler import FixedPoint, schedule
from graphprune.state import CompileState
from graphprune.testing import masked_equivalence_error
from passes import Allocate, RemoveChannels, ScoreMagnitude
from tests.helpers import Residual, calibrate, step_names

pytestmark = pytest.mark.usefixtures("single_thread")





def test_default_plan_schedules_the_core_pipeline_in_dependency_order() -> None:
    s = schedule(load_plan())
    assert step_names(s) == ["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate",
                         "remove-channels"]
    assert s.goals == [("removed", "default: structure 'channel'")]
    for a, b in s.graph.edges:  # every edge is respected by the order
        assert step_names(s).index(a.split("(")[0]) < step_names(s).index(b.split("(")[0])


def test_criterion_decides_the_score_pass_and_its_configuration() -> None:
    s = schedule(load_plan({"prune": [{"select": "*", "sparsity": 0.5, "score": "l1"}]}))
    score = next(st.pass_ for st in s.steps if st.pass_.name == "score-magnitude")
    assert score == ScoreMagnitude(p=1) and score.provides == {"scores:l1"}
    s = schedule(load_plan({"prune": [{"select": "*", "sparsity": 0.5, "score": "fpgm"}]}))
    assert "score-fpgm" in step_names(s)


def test_two_criteria_get_two_score_passes() -> None:
    plan = load_plan({"prune": [{"select": "layer*", "sparsity": 0.5, "score": "l1"},
                                {"select": "*", "sparsity": 0.3, "score": "l2"}]})
    scores = [st.pass_ for st in schedule(plan).steps if st.pass_.name == "score-magnitude"]
    assert sorted(p.p for p in scores) == [1, 2]


def test_explain_names_every_pass_and_why() -> None:
    text = schedule(load_plan("macs-50-global")).explain()
    for name in ("trace", "analyze-channels", "score-magnitude", "allocate", "remove-channels"):
        assert name in text
    assert "goal 'removed' (prune[0]: structure 'channel')" in text
    assert "provides 'scores:l2' for allocate" in text


@dataclass(frozen=True)
class _Needs(Pass):
    name = "test-needs-b"
    requires = frozenset({"fact-b"})
    provides = frozenset({"fact-a"})

    def run(self, state: CompileState) -> CompileState:
        return state


@dataclass(frozen=True)
class _Gives(Pass):
    name = "test-gives-b"
    requires = frozenset({"fact-a"})
    provides = frozenset({"fact-b"})

    def run(self, state: CompileState) -> CompileState:
        return state


@pytest.fixture
def cyclic_passes():
    yield
    for name in ("test-needs-b", "test-gives-b", "test-orphan"):
        PASSES.pop(name, None)


def test_cycle_is_rejected_with_the_cycle(cyclic_passes) -> None:
    plan = load_plan({"prune": [{"sparsity": 0.5}], "passes": {"test-needs-b": {}, "test-gives-b": {}}})
    with pytest.raises(PlanError, match=r"cycle: test-(needs|gives)-b \(fact-.\) -> test-(needs|gives)-b"):
        schedule(plan)


def test_unsatisfiable_requirement_is_rejected(cyclic_passes) -> None:
    @dataclass(frozen=True)
    class _Orphan(Pass):
        name = "test-orphan"
        requires = frozenset({"fact-nobody-makes"})

    plan = load_plan({"prune": [{"sparsity": 0.5}], "passes": {"test-orphan": {}}})
    with pytest.raises(PlanError, match="needs fact 'fact-nobody-makes', which no registered pass provides"):
        schedule(plan)


def test_pinned_pipeline_keeps_its_order_and_runs() -> None:
    pipeline = ["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate", "remove-channels"]
    plan = load_plan({"prune": [{"sparsity": 0.5}], "pipeline": pipeline})
    s = schedule(plan)
    assert step_names(s) == pipeline and all(st.why == "pinned by the plan's pipeline" for st in s.steps)
    model = calibrate(Residual().eval(), (torch.randn(1, 3, 8, 8),))
    result = graphprune.compile(model, torch.randn(1, 3, 8, 8), plan=plan)
    assert [t["pass"] for t in result.report.schedule] == pipeline


def test_invalidated_analyses_are_rerun_before_their_next_reader() -> None:
    """A second remove round after the first needs shapes and groups again: the scheduler re-runs
    propagate-shapes and analyze-channels (recorded with why), and kept indices stay exact."""
    pipeline = ["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate", "remove-channels",
                "score-magnitude", "allocate", "remove-channels"]
    plan = load_plan({"prune": [{"sparsity": 0.25}], "pipeline": pipeline})
    x = torch.randn(2, 3, 8, 8)
    model = calibrate(Residual().eval(), (x,))
    result = graphprune.compile(model, x, plan=plan)
    trail = [(t["pass"], t["why"]) for t in result.report.schedule]
    reruns = [p for p, why in trail if why.startswith("re-run")]
    assert reruns == ["propagate-shapes", "analyze-channels", "propagate-shapes", "analyze-channels"][:len(reruns)]
    assert "analyze-channels" in reruns and "propagate-shapes" in reruns
    assert result.module.get_submodule("body.0").out_channels == 16 - 4 - 3  # 25 % of 16, then 25 % of 12
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5


def test_fixed_point_of_unused_path_removal_is_scheduled_after_removal() -> None:
    plan = load_plan({"prune": [{"sparsity": 0.5}], "purify": {}})
    s = schedule(plan)
    names = step_names(s)
    assert names.index("fixed-point") == names.index("purify") + 1  # purify zeroes, the loop removes
    assert names.index("purify") > names.index("remove-channels")
    loop = s.steps[names.index("fixed-point")]
    assert (loop.detect.name, loop.apply.name) == ("remove-unused-paths", "remove-channels")


def test_mask_rule_configures_the_mask_pass_from_the_rule() -> None:
    plan = load_plan({"prune": [{"select": "*", "structure": "irregular", "sparsity": 0.8, "score": "snip"}]})
    mask = next(st.pass_ for st in schedule(plan).steps if not isinstance(st, FixedPoint)
                and st.pass_.name == "apply-masks")
    assert (mask.criterion, mask.density, mask.scope) == ("snip", pytest.approx(0.2), "global")
    assert "weight-scores:snip" in mask.requires
    nm = next(st.pass_ for st in schedule(load_plan({"prune": [{"structure": "2:4", "sparsity": 0.5}]})).steps
              if not isinstance(st, FixedPoint) and st.pass_.name == "apply-masks")
    assert nm.structure == "2:4"


def test_fixed_point_removes_channels_left_dead_by_the_model(tmp_path) -> None:
    x = torch.randn(2, 3, 8, 8)
    model = calibrate(Residual().eval(), (x,))
    with torch.no_grad():  # channels 0..5 of the 16-wide hidden layer produce zero and read nothing
        model.body[0].weight[:6] = 0
        model.body[0].bias[:6] = 0
        model.body[1].weight[:6] = 0
        model.body[1].bias[:6] = 0
    plan = load_plan({"prune": [{"sparsity": 0.0}], "purify": {}})
    result = graphprune.compile(model, x, plan=plan)
    assert result.module.get_submodule("body.0").out_channels == 10
    assert any(t["pass"] == "remove-unused-paths" for t in result.report.schedule)
    torch.testing.assert_close(result.module(x), model(x), rtol=1e-5, atol=1e-5)


def test_fingerprint_is_stable_across_processes_and_tracks_configuration() -> None:
    here = ScoreMagnitude(p=1).fingerprint()
    code = "from passes import ScoreMagnitude; print(ScoreMagnitude(p=1).fingerprint())"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there
    assert ScoreMagnitude(p=2).fingerprint() != here
    a = Allocate(plan=load_plan({"prune": [{"sparsity": 0.5}]})).fingerprint()
    assert a == Allocate(plan=load_plan({"prune": [{"sparsity": 0.5}]})).fingerprint()
    assert a != Allocate(plan=load_plan({"prune": [{"sparsity": 0.4}]})).fingerprint()


def test_passes_run_inside_torch_fx_pass_manager() -> None:
    x = torch.randn(2, 3, 8, 8)
    model = calibrate(Residual().eval(), (x,))
    gm = torch.fx.symbolic_trace(model)
    manager = PassManager(passes=fx_passes([ScoreMagnitude(), Allocate(), RemoveChannels()], (x,)))
    result = manager(gm)
    pruned = result.graph_module
    assert result.modified
    assert pruned.get_submodule("body.0").out_channels == 8 and pruned.get_submodule("stem.0").out_channels == 4
    assert pruned(x).shape == model(x).shape
    kept = manager.passes[-1].carrier.state.kept
    assert masked_equivalence_error(model, pruned, kept, (x,)) < 1e-5
    assert sum(p.numel() for p in gm.parameters()) == sum(p.numel() for p in model.parameters())  # input intact


def test_entry_point_plugins_register_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    ep = metadata.EntryPoint(name="demo", value="tests.plugin_pass:DemoPlugin", group="graphprune.passes")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [ep] if group == "graphprune.passes" else [])
    try:
        assert "demo-plugin" in load_entry_points()
        plan = load_plan({"prune": [{"sparsity": 0.5}], "passes": {"demo-plugin": {"factor": 3}}})
        plugin = next(st.pass_ for st in schedule(plan).steps if st.pass_.name == "demo-plugin")
        assert dataclasses.asdict(plugin) == {"factor": 3}
    finally:
        PASSES.pop("demo-plugin", None)


def test_plugins_are_scanned_again_only_when_the_installed_set_may_have_changed(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The metadata scan costs a tenth of a small compile: a second schedule in the same process does
    not repeat it, but a new sys.path entry, or a distribution added to one, makes it scan again."""
    from importlib import metadata

    calls = []
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: calls.append(group) or [])
    load_entry_points()
    load_entry_points()
    schedule(load_plan({"prune": [{"sparsity": 0.5}]}))
    assert len(calls) == 1
    monkeypatch.syspath_prepend(str(tmp_path))
    load_entry_points()
    assert len(calls) == 2
    (tmp_path / "demo-1.0.dist-info").mkdir()  # a distribution installed into a path entry
    os.utime(tmp_path, ns=(1, 10**18))
    load_entry_points()
    assert len(calls) == 3


def test_broken_plugin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    ep = metadata.EntryPoint(name="broken", value="tests.no_such_module:Thing", group="graphprune.passes")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [ep])
    with pytest.raises(graphprune.GraphpruneError, match="pass plugin 'broken'"):
        load_entry_points()


@pytest.mark.parametrize(("value", "accepted"), [(0.2, 0.2), (3, 3.0), (0.5, None), (True, None)])
def test_pass_options_follow_the_declared_type(value, accepted) -> None:
    """``retrain_epochs: float = 5`` takes 0.2 (its int default does not make it an int option);
    ``iterations: int`` refuses 0.5; a bool is never a number."""
    key = "iterations" if value == 0.5 else "retrain_epochs"
    plan = load_plan({"sparsity": 0.5, "admm": {key: value}})
    if accepted is None:
        with pytest.raises(PlanError, match=f"admm.{key}: expected"):
            schedule(plan)
        return
    admm = [s.pass_ for s in schedule(plan).steps if getattr(s, "pass_", None) is not None and s.pass_.name == "admm"]
    assert [a.retrain_epochs for a in admm] == [accepted] and isinstance(admm[0].retrain_epochs, float)
