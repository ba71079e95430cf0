"""A schedule: the ordered steps the scheduler chose, why each runs, the analyses re-run between them,
and its execution.

A step is one pass or a fixed-point loop (``detect`` then ``apply`` until ``detect`` keeps every
channel). Between steps, an analysis a pass invalidated is re-run before its next reader; which ones
``graphprune.pipeline.rerun_chain`` decides, for ``explain`` (simulated on the declared facts) and for
``run_schedule`` (on the state) alike, so what ``--explain`` shows is what runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphprune.passes import PASSES, Pass
from graphprune.pipeline import Rerun, after, ensure, rerun_chain, run_pass
from graphprune.state import CompileState


@dataclass(frozen=True)
class Step:
    pass_: Pass
    why: str


@dataclass(frozen=True)
class FixedPoint:
    """Repeat ``detect`` (which provides ``keep``) and ``apply`` until ``detect`` keeps everything."""

    detect: Pass
    apply: Pass
    why: str
    max_rounds: int = 20


@dataclass
class Schedule:
    steps: list[Step | FixedPoint]
    goals: list[tuple[str, str]]
    graph: nx.DiGraph = field(repr=False)

    def reruns(self) -> list[list[list[Rerun]]]:
        """Per step, the analyses run before it: ``[before the step]`` for a pass, ``[before the first
        round's detect, before a later round's detect]`` for a fixed point."""
        facts: frozenset[str] = frozenset()
        out = []
        for step in self.steps:
            if isinstance(step, FixedPoint):
                first, facts = _round(facts, step)
                later, again = _round(after(facts, step.apply), step)
                facts &= again  # the loop may end after the first round or a later one
                out.append([first, later])
            else:
                chain = rerun_chain(step.pass_.requires, facts, step.pass_.label())
                facts = after(_through(facts, chain), step.pass_)
                out.append([chain])
        return out

    def explain(self) -> str:
        lines = ["goals:"] + [f"  {fact:<16} <- {why}" for fact, why in self.goals] + ["pipeline:"]
        for i, (step, reruns) in enumerate(zip(self.steps, self.reruns()), 1):
            if isinstance(step, FixedPoint):
                lines.append(f"  {i:>2}. repeat [{step.detect.label()} -> {step.apply.label()}] until nothing is "
                             f"removed (max {step.max_rounds})   # {step.why}")
                lines += [f"      {when}, re-run {_listed(chain)}" for when, chain
                          in zip(("before round 1", "before each later round"), reruns) if chain]
            else:
                p = step.pass_
                lines.append(f"  {i:>2}. {p.label():<28} requires {_facts(p.requires):<32} provides "
                             f"{_facts(p.provides)}   # {step.why}")
                lines += [f"      before it, re-run {_listed(reruns[0])}"] if reruns[0] else []
        analyses = sorted((fact, name) for name, cls in PASSES.items() for fact in cls.reruns)
        lines.append("analyses a pass invalidates are re-run before their next reader: "
                     + ", ".join(f"{fact} by {name}" for fact, name in analyses))
        return "\n".join(lines)

    def to_dict(self) -> list[dict[str, Any]]:
        out = []
        for step, reruns in zip(self.steps, self.reruns()):
            if isinstance(step, FixedPoint):
                entry = {"repeat": [step.detect.label(), step.apply.label()], "why": step.why}
            else:
                entry = {"pass": step.pass_.label(), "why": step.why,
                         "requires": sorted(step.pass_.requires), "provides": sorted(step.pass_.provides),
                         "fingerprint": step.pass_.fingerprint()}
            if any(reruns):
                entry["reruns"] = [[link.pass_.label() for link in chain] for chain in reruns]
            out.append(entry)
        return out


def _round(facts: frozenset[str], loop: FixedPoint) -> tuple[list[Rerun], frozenset[str]]:
    """The re-runs before one round's ``detect``, and the facts once it has run."""
    chain = rerun_chain(loop.detect.requires, facts, loop.detect.label())
    return chain, after(_through(facts, chain), loop.detect)


def _through(facts: frozenset[str], chain: list[Rerun]) -> frozenset[str]:
    for link in chain:
        facts = after(facts, link.pass_)
    return facts


def _listed(chain: list[Rerun]) -> str:
    return ", ".join(f"{link.pass_.label()} ('{link.fact}' for {link.reader})" for link in chain)


def _facts(facts: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(facts)) + "}" if facts else "{}"


def run_schedule(state: CompileState, plan_schedule: Schedule) -> CompileState:
    for step in plan_schedule.steps:
        if isinstance(step, FixedPoint):
            state = _run_fixed_point(state, step)
            continue
        state = ensure(state, step.pass_.requires, step.pass_.label())
        state = run_pass(state, step.pass_, step.why)
    return state


def _run_fixed_point(state: CompileState, loop: FixedPoint) -> CompileState:
    for round_ in range(1, loop.max_rounds + 1):
        state = ensure(state, loop.detect.requires, loop.detect.label())
        state = run_pass(state, loop.detect, f"{loop.why}; round {round_}")
        if state.keep is None or bool(state.keep.all()):
            return state
        state = run_pass(state, loop.apply, f"remove what round {round_} found dead")
    return state
