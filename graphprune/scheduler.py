"""The scheduler: from a plan's goals to a validated, ordered pipeline of passes, and its execution.

Goals are facts the plan asks for (``removed`` for channel rules, ``masks`` for mask-level rules,
``fused``/``exported`` from ``[emit]``, every pass a plan section configures). Providers are chosen
backwards from the goals: a configured pass first, then the default provider of the fact (the table
``DEFAULT_PROVIDERS``), then the only registered pass that can provide it. The pass graph (networkx)
gets an edge provider -> consumer per fact, plus consumer -> invalidator edges so a pass that destroys
an analysis runs after its readers; it is ordered topologically by pipeline stage and rejected with the
cycle or the missing fact when invalid. At run time an analysis a pass invalidated is re-run before the
next reader (``RERUN_PROVIDERS``), and the lossless unused-path removal iterates with removal to a
fixed point. Every run records the pass, why it ran and how long it took."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphprune.errors import PlanError
from graphprune.passes import PASSES, Pass, invalidated, load_entry_points, run_pass
from graphprune.plan import Plan
from graphprune.state import CompileState

DEFAULT_PROVIDERS = {  # fact -> the pass that provides it unless the plan configures another
    "traced": "trace", "shapes": "trace", "canonical": "canonicalize", "groups": "analyze-channels",
    "keep": "allocate", "removed": "remove-channels", "masks": "apply-masks", "fused": "fuse",
    "exported": "emit",
}
RERUN_PROVIDERS = {"shapes": "propagate-shapes", "groups": "analyze-channels", "canonical": "canonicalize"}
STAGES = ["trace", "propagate-shapes", "canonicalize", "analyze-channels", "score-*", "admm", "allocate",
          "apply-masks", "remove-channels", "remove-unused-paths", "purify", "finetune",
          "fuse", "emit", "measure-latency"]
PER_WEIGHT_ALIASES = {"l1": "magnitude", "l2": "magnitude"}  # a weight's L1 and L2 norm are both |w|
FIXED_POINT = ("remove-unused-paths", "remove-channels")  # detect dead channels, remove, until none
PLAN_CONFIGURED = {"allocate"}  # passes built from the whole plan rather than a [passes.NAME] table


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

    def explain(self) -> str:
        lines = ["goals:"] + [f"  {fact:<16} <- {why}" for fact, why in self.goals] + ["pipeline:"]
        for i, step in enumerate(self.steps, 1):
            if isinstance(step, FixedPoint):
                lines.append(f"  {i:>2}. repeat [{step.detect.label()} -> {step.apply.label()}] until nothing is "
                             f"removed (max {step.max_rounds})   # {step.why}")
            else:
                p = step.pass_
                lines.append(f"  {i:>2}. {p.label():<28} requires {_facts(p.requires):<32} provides "
                             f"{_facts(p.provides)}   # {step.why}")
        lines.append("analyses a pass invalidates are re-run before their next reader: "
                     + ", ".join(f"{f} by {n}" for f, n in RERUN_PROVIDERS.items()))
        return "\n".join(lines)

    def to_dict(self) -> list[dict[str, Any]]:
        out = []
        for step in self.steps:
            if isinstance(step, FixedPoint):
                out.append({"repeat": [step.detect.label(), step.apply.label()], "why": step.why})
            else:
                out.append({"pass": step.pass_.label(), "why": step.why,
                            "requires": sorted(step.pass_.requires), "provides": sorted(step.pass_.provides),
                            "fingerprint": step.pass_.fingerprint()})
        return out


def _facts(facts: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(facts)) + "}" if facts else "{}"


def goals_of(plan: Plan) -> list[tuple[str, str]]:
    goals: list[tuple[str, str]] = []
    for rule in plan.rules:
        fact = "removed" if rule.removes_channels else "masks"
        goals.append((fact, f"{rule.path}: structure '{rule.structure}'"))
    if plan.emit.fuse:
        goals.append(("fused", "emit.fuse = true"))
    if plan.emit.path:
        goals.append(("exported", f"emit.path = '{plan.emit.path}'"))
    return goals


def _stage(p: Pass) -> tuple[int, str]:
    for i, pattern in enumerate(STAGES):
        if p.name == pattern or (pattern.endswith("*") and p.name.startswith(pattern[:-1])):
            return (i, p.name)
    return (STAGES.index("allocate"), p.name)


class _Builder:
    def __init__(self, plan: Plan, context: Mapping[str, Mapping[str, Any]]):
        import passes  # noqa: F401  (the pass library registers itself on import)

        load_entry_points()
        self.plan, self.context = plan, context
        self.chosen: dict[str, Pass] = {}  # label -> pass
        self.why: dict[str, str] = {}
        self.configured = self._configured()

    def instantiate(self, name: str, where: str, base: Pass | None = None) -> Pass:
        cls = PASSES.get(name)
        if cls is None:
            close = difflib.get_close_matches(name, list(PASSES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.plan.error(where, f"unknown pass '{name}' (registered: {', '.join(sorted(PASSES))}){hint}")
        if name in PLAN_CONFIGURED:
            p = cls(plan=self.plan)
        else:
            p = cls.from_plan(self.plan, self.plan.pass_options.get(name, {}), _options_path(self.plan, name)) \
                if base is None else base
        extra = self.context.get(name)
        return _replace(p, extra) if extra else p

    def _configured(self) -> dict[str, Pass]:
        out = {}
        for name in self.plan.pass_options:
            out[name] = self.instantiate(name, _options_path(self.plan, name))
        return out

    def provider(self, fact: str, needed_by: str) -> Pass:
        for p in [*self.chosen.values(), *self.configured.values()]:
            if fact in p.provides:
                return p
        default = DEFAULT_PROVIDERS.get(fact)
        if default in PASSES:
            return self.instantiate(default, needed_by)
        offers = [(n, p) for n, cls in sorted(PASSES.items()) if (p := cls.for_fact(fact)) is not None]
        if len(offers) == 1:
            return self.instantiate(offers[0][0], needed_by, base=offers[0][1])
        who = f"{self.plan.source.name}: {needed_by}"
        if not offers:
            raise PlanError(f"{who} needs fact '{fact}', which no registered pass provides "
                            f"(registered: {', '.join(sorted(PASSES))})")
        raise PlanError(f"{who} needs fact '{fact}', provided by several passes "
                        f"({', '.join(n for n, _ in offers)}); pin one in `pipeline`")

    def add(self, p: Pass, why: str) -> None:
        if p.label() in self.chosen:
            return
        self.chosen[p.label()] = p
        self.why[p.label()] = why
        for fact in sorted(p.requires):
            if any(fact in q.provides for q in self.chosen.values()):
                continue
            self.add(self.provider(fact, p.label()), f"provides '{fact}' for {p.label()}")

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for label, p in self.chosen.items():
            g.add_node(label, pass_=p)
        for label, p in self.chosen.items():
            for fact in p.requires:
                for other, q in self.chosen.items():
                    if other != label and fact in q.provides:
                        g.add_edge(other, label, fact=fact)
        for label, p in self.chosen.items():  # readers of a fact run before the pass that invalidates it
            for other, q in self.chosen.items():
                hit = any(invalidated(f, q.invalidates) for f in p.requires)
                if other != label and hit and not nx.has_path(g, other, label):
                    g.add_edge(label, other, fact="(invalidated)")
        return g


def _options_path(plan: Plan, name: str) -> str:
    return name if name in plan.source.data else f"passes.{name}"


def _replace(p: Pass, extra: Mapping[str, Any]) -> Pass:
    return dataclasses.replace(p, **extra)


def schedule(plan: Plan, context: Mapping[str, Mapping[str, Any]] | None = None) -> Schedule:
    """The pipeline for ``plan``; ``context`` adds per-pass fields the plan cannot spell (the API's
    ``leaf_modules`` classes for ``trace``)."""
    b = _Builder(plan, context or {})
    _check_criteria(plan)
    if plan.pipeline is not None:
        return _pinned(b, plan)
    goals = goals_of(plan)
    for name, p in b.configured.items():
        b.add(p, f"configured by [{_options_path(plan, name)}]")
    for rule in plan.rules:
        if not rule.removes_channels:
            b.add(_mask_pass(b, rule), f"goal 'masks' ({rule.path}: structure '{rule.structure}')")
    for fact, why in goals:
        if not any(fact in p.provides for p in b.chosen.values()):
            provider = b.provider(fact, why)
            if fact == "exported" and "paths" in {f.name for f in dataclasses.fields(provider)}:
                provider = dataclasses.replace(provider, paths=plan.emit.resolved())
            b.add(provider, f"goal '{fact}' ({why})")
    g = b.graph()
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(f"{u} ({g.edges[u, v]['fact']})" for u, v in cycle) + f" -> {cycle[0][0]}"
        raise PlanError(f"{plan.source.name}: the passes form a cycle: {path}")
    order = list(nx.lexicographical_topological_sort(g, key=lambda n: _stage(g.nodes[n]["pass_"])))
    steps: list[Step | FixedPoint] = [Step(g.nodes[n]["pass_"], b.why[n]) for n in order]
    return Schedule(_with_fixed_point(b, plan, steps), goals, g)


def _mask_pass(b: _Builder, rule: Any) -> Pass:
    """The mask pass configured by a mask-level rule: its criterion, density and scope."""
    name = DEFAULT_PROVIDERS["masks"]
    if name not in PASSES:
        raise b.plan.error(f"{rule.path}.structure", f"'{rule.structure}' needs a pass providing 'masks'; "
                                                     f"none is registered")
    base = b.instantiate(name, f"{rule.path}.structure")
    criterion = PER_WEIGHT_ALIASES.get(rule.score, rule.score)
    options = {"criterion": criterion, "density": round(1.0 - rule.sparsity, 12),
               "scope": rule.scope or "global", "structure": rule.structure}
    fields = {f.name for f in dataclasses.fields(base)}
    unsupported = {k: v for k, v in options.items() if k not in fields}
    if "structure" in unsupported and rule.structure != "irregular":
        raise b.plan.error(f"{rule.path}.structure", f"'{rule.structure}' masks are not supported yet by pass "
                                                     f"'{name}' (it makes irregular masks)")
    return dataclasses.replace(base, **{k: v for k, v in options.items() if k in fields})


def _check_criteria(plan: Plan) -> None:
    """Every rule's score names a criterion some registered pass provides."""
    known = sorted({f.removeprefix("scores:") for cls in PASSES.values() for f in _offered(cls)})
    for rule in plan.rules:
        if not any(cls.for_fact(f"scores:{rule.score}") is not None for cls in PASSES.values()):
            close = difflib.get_close_matches(rule.score, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise plan.error(f"{rule.path}.score", f"unknown criterion '{rule.score}' (registered: "
                                                   f"{', '.join(known)}){hint}")


def _offered(cls: type[Pass]) -> frozenset[str]:
    facts = set()
    for fact in ("scores:l1", "scores:l2"):
        if cls.for_fact(fact) is not None:
            facts.add(fact)
    try:
        facts |= {f for f in cls().provides if f.startswith("scores:")}
    except TypeError:
        pass
    return frozenset(facts)


def _with_fixed_point(b: _Builder, plan: Plan, steps: list[Step | FixedPoint]) -> list[Step | FixedPoint]:
    detect_name, apply_name = FIXED_POINT
    wants = "purify" in plan.pass_options or "admm" in plan.pass_options or any(
        not r.removes_channels for r in plan.rules)
    if not wants or detect_name not in PASSES or apply_name not in PASSES:
        return steps
    last_removal = max((i for i, s in enumerate(steps) if isinstance(s, Step) and s.pass_.name == apply_name),
                       default=None)
    loop = FixedPoint(b.instantiate(detect_name, detect_name), b.instantiate(apply_name, apply_name),
                      "sparsity left by training or masks may leave whole channels dead (lossless)")
    purify = max((i for i, s in enumerate(steps) if isinstance(s, Step) and s.pass_.name == "purify"), default=-1)
    at = len(steps) if last_removal is None else max(last_removal, purify) + 1
    before_fuse = next((i for i, s in enumerate(steps) if isinstance(s, Step) and s.pass_.name in ("fuse", "emit")),
                       len(steps))
    return [*steps[:min(at, before_fuse)], loop, *steps[min(at, before_fuse):]]


def _pinned(b: _Builder, plan: Plan) -> Schedule:
    steps: list[Step | FixedPoint] = []
    facts: set[str] = set()
    mask_rules = iter([r for r in plan.rules if not r.removes_channels])
    for i, name in enumerate(plan.pipeline):
        where = f"pipeline[{i}]"
        rule = next(mask_rules, None) if name == DEFAULT_PROVIDERS["masks"] else None
        p = _mask_pass(b, rule) if rule is not None else b.configured.get(name) or b.instantiate(name, where)
        facts |= _rerunnable(p.requires - facts, facts)
        missing = sorted(p.requires - facts)
        if missing:
            providers = sorted(n for n, cls in PASSES.items() if cls.for_fact(missing[0]) is not None)
            hint = f" (provided by: {', '.join(providers)})" if providers else ""
            raise plan.error(where, f"pass '{name}' requires {missing}, which no earlier pass provides{hint}")
        facts = {f for f in facts if not invalidated(f, p.invalidates)} | set(p.provides)
        b.chosen[p.label()] = p
        steps.append(Step(p, "pinned by the plan's pipeline"))
    goals = goals_of(plan)
    for fact, why in goals:
        if fact not in facts:
            raise plan.error("pipeline", f"does not reach goal '{fact}' asked by {why}")
    return Schedule(steps, goals, b.graph())


def _rerunnable(missing: frozenset[str], facts: set[str]) -> set[str]:
    """Facts the run-time re-run of invalidated analyses will provide (what ``ensure`` will do)."""
    gained: set[str] = set()
    for fact in sorted(missing):
        name = RERUN_PROVIDERS.get(fact)
        if name is None or name not in PASSES or "traced" not in facts:
            continue
        provider = PASSES[name]()
        have = facts | gained
        have |= _rerunnable(provider.requires - have, have)
        if provider.requires <= have:
            gained |= (have - facts) | set(provider.provides)
    return gained


def ensure(state: CompileState, facts: frozenset[str], reader: str) -> CompileState:
    """Re-run the analyses that provide ``facts`` if an earlier pass invalidated them."""
    for fact in sorted(facts - state.facts):
        name = RERUN_PROVIDERS.get(fact) if "traced" in state.facts else DEFAULT_PROVIDERS.get(fact)
        if name is None or name not in PASSES:
            continue  # run_pass reports the missing fact with the passes run so far
        provider = PASSES[name]()
        state = ensure(state, provider.requires, provider.label())
        state = run_pass(state, provider, f"re-run: '{fact}' needed by {reader}")
    return state


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


def explain(plan: Plan, context: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    return schedule(plan, context).explain()


__all__: Sequence[str] = ["FixedPoint", "Schedule", "Step", "ensure", "explain", "run_schedule", "schedule"]
