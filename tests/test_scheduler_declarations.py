"""The scheduler derives every placement from the passes' declarations: it names no pass and keeps no
table of them, a third-party pass declared only by its class variables lands where they say, and
``explain`` shows the re-runs of invalidated analyses that the run then performs."""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import graphprune
import passes  # noqa: F401  (registers the library)
from graphprune.passes import PASSES, Pass, Stage
from graphprune.plan import load_plan
from graphprune.scheduler import schedule
from graphprune.state import CompileState
from tests.helpers import Residual, calibrate, step_names

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]
SCHEDULING = ("graphprune/scheduler.py", "graphprune/schedule.py", "graphprune/pipeline.py")





@pytest.mark.parametrize("path", SCHEDULING)
def test_scheduling_code_names_no_pass_and_keeps_no_table(path: str) -> None:
    """No registered pass name as a string literal anywhere, and no module-level container literal of
    strings (the old ``STAGES``/``DEFAULT_PROVIDERS``/... tables) besides ``__all__``."""
    tree = ast.parse((ROOT / path).read_text())
    named = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in PASSES})
    assert named == [], f"{path} names passes {named}"
    containers = (ast.Dict, ast.Set, ast.List, ast.Tuple, ast.DictComp, ast.SetComp, ast.ListComp)
    for stmt in tree.body:
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or stmt.value is None:
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            continue
        holds_strings = any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(stmt.value))
        assert not (isinstance(stmt.value, containers) and holds_strings), \
            f"{path}:{stmt.lineno} keeps a module-level table: {ast.unparse(stmt)[:80]}"


@pytest.fixture
def third_party():
    before = dict(PASSES)
    yield
    PASSES.clear()
    PASSES.update(before)


def test_a_new_stage_between_two_existing_ones_is_honoured(third_party) -> None:
    """A pass that needs only ``traced`` could run anywhere after trace; its declared stage (between
    removal and purification) alone puts it there."""

    @dataclass(frozen=True)
    class Report(Pass):
        name = "test-after-removal"
        requires = frozenset({"traced"})
        provides = frozenset({"test-report"})
        stage = Stage.REMOVE + 5

        def run(self, state: CompileState) -> CompileState:
            return state

    names = step_names(schedule(load_plan({"sparsity": 0.5, "purify": {}, "passes": {"test-after-removal": {}}})))
    assert names.index("remove-channels") + 1 == names.index("test-after-removal")
    assert names.index("test-after-removal") + 1 == names.index("purify")


def _zeroing_pass(dead: bool):
    """A third-party pass that zeroes filters 0..5 of ``body.0`` (and their BatchNorm), so those channels
    of the hidden layer carry nothing; ``dead`` is its ``leaves_dead_channels`` declaration."""

    @dataclass(frozen=True)
    class ZeroFilters(Pass):
        name = "test-zero-filters"
        requires = frozenset({"traced"})
        provides = frozenset({"test-zeroed"})
        stage = Stage.PURIFY + 5
        leaves_dead_channels = dead

        def run(self, state: CompileState) -> CompileState:
            gm = copy.deepcopy(state.gm)
            with torch.no_grad():
                for name in ("body.0", "body.1"):
                    gm.get_submodule(name).weight[:6] = 0
                    gm.get_submodule(name).bias[:6] = 0
            return state.with_(gm=gm)

    return ZeroFilters


@pytest.mark.parametrize("dead", [True, False])
def test_a_pass_that_leaves_dead_channels_gets_the_fixed_point_after_it(third_party, dead: bool) -> None:
    _zeroing_pass(dead)
    plan = load_plan({"prune": [{"sparsity": 0.25}], "passes": {"test-zero-filters": {}}})
    names = step_names(schedule(plan))
    x = torch.randn(2, 3, 8, 8)
    model = calibrate(Residual().eval(), (x,))
    width = graphprune.compile(model, x, plan=plan).module.get_submodule("body.0").out_channels
    if dead:  # removal keeps 12 of 16, the pass zeroes 6 of them, the fixed point removes those
        assert names.index("fixed-point") == names.index("test-zero-filters") + 1 and width == 6
    else:
        assert "fixed-point" not in names and width == 12


def test_a_declared_default_provider_settles_a_fact_two_passes_offer(third_party) -> None:
    for default in (False, True):
        @dataclass(frozen=True)
        class Offer(Pass):
            name = f"test-offer-{int(default)}"
            requires = frozenset({"traced"})
            provides = frozenset({"test-fact"})
            default_for = frozenset({"test-fact"}) if default else frozenset()

            def run(self, state: CompileState) -> CompileState:
                return state

    @dataclass(frozen=True)
    class Reader(Pass):
        name = "test-reader"
        requires = frozenset({"test-fact"})

        def run(self, state: CompileState) -> CompileState:
            return state

    names = step_names(schedule(load_plan({"sparsity": 0.5, "passes": {"test-reader": {}}})))
    assert "test-offer-1" in names and "test-offer-0" not in names


def test_explain_lists_the_reruns_that_the_run_then_performs() -> None:
    """A second removal round needs shapes and groups again: ``explain``/``to_dict`` predict the
    re-runs, and the compiled report's schedule records exactly those."""
    pipeline = ["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate", "remove-channels",
                "score-magnitude", "allocate", "remove-channels"]
    plan = load_plan({"prune": [{"sparsity": 0.25}], "pipeline": pipeline})
    s = schedule(plan)
    text = s.explain()
    assert ("   7. score-magnitude" in text and "      before it, re-run propagate-shapes ('shapes' for "
            "analyze-channels), analyze-channels ('groups' for score-magnitude)" in text)
    predicted = [name for step in s.to_dict() for chain in step.get("reruns", []) for name in chain]
    x = torch.randn(2, 3, 8, 8)
    trail = graphprune.compile(calibrate(Residual().eval(), (x,)), x, plan=plan).report.schedule
    assert predicted == [t["pass"] for t in trail if t["why"].startswith("re-run")] \
        == ["propagate-shapes", "analyze-channels"]


def test_explain_lists_the_reruns_inside_the_fixed_point() -> None:
    s = schedule(load_plan({"prune": [{"sparsity": 0.5}], "purify": {}}))
    loop = next(st for st in s.to_dict() if "repeat" in st)
    assert loop["reruns"] == [["propagate-shapes", "analyze-channels"]] * 2  # removal ran before every round
    assert "before round 1, re-run propagate-shapes ('shapes' for analyze-channels), analyze-channels " \
           "('groups' for remove-unused-paths)" in s.explain()
