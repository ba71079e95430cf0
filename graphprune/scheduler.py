"""The scheduler: from a plan's goals to a validated, ordered pipeline of passes.

Goals are facts the plan asks for (``removed`` for channel rules, ``masks`` for mask-level rules,
``fused``/``exported`` from ``[emit]``, every pass a plan section configures). Providers are chosen
backwards from the goals: a configured pass first, then the pass declaring itself the fact's default
provider (``default_for``), then the only registered pass that can provide it. The pass graph
(networkx) gets an edge provider -> consumer per fact, plus consumer -> invalidator edges so a pass
that destroys an analysis runs after its readers; it is ordered topologically by each pass's declared
``stage`` (then name) and rejected with the cycle or the missing fact when invalid. After the last pass
that declares it may leave whole channels dead, the dead-channel fixed point (the passes declaring the
``fixed_point`` roles ``detect`` and ``apply``) runs until nothing more dies. The scheduler names no
pass and keeps no table of passes: everything it knows about one is that pass's declarations
(``graphprune.passes.Pass``). Re-runs of invalidated analyses: ``graphprune.schedule``."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from graphprune.errors import PlanError
from graphprune.passes import PASSES, Pass, invalidated, load_entry_points
from graphprune.pipeline import after, ensure, provider_of, rerun_chain
from graphprune.plan import Plan
from graphprune.plan.budget import latency_rule, layout_of
from graphprune.schedule import FixedPoint, Schedule, Step, run_schedule

DEAD_CHANNELS_WHY = "sparsity left by training or masks may leave whole channels dead (lossless)"


def goals_of(plan: Plan) -> list[tuple[str, str]]:
    goals: list[tuple[str, str]] = []
    for rule in plan.rules:
        fact = "removed" if rule.removes_channels else "masks"
        goals.append((fact, f"{rule.path}: structure '{rule.structure}'"))
    latency = latency_rule(plan)
    if plan.emit.fuse:
        goals.append(("fused", "emit.fuse = true"))
    elif latency is not None:  # the time measured is the time of what is returned: fold BatchNorm first
        goals.append(("fused", f"{latency.path}.budget.latency: a latency target is met on the fused model"))
    layout = layout_of(plan)
    if layout != "contiguous":
        why = f"emit.layout = '{layout}'" if plan.emit.layout else \
            f"{latency.path}.budget.latency: the faster memory format, measured"
        goals.append(("laid-out", why))
    if plan.emit.path:
        goals.append(("exported", f"emit.path = '{plan.emit.path}'"))
    return goals


def _order_key(p: Pass) -> tuple[int, str]:
    return (int(p.stage), p.name)


class _Builder:
    def __init__(self, plan: Plan, context: Mapping[str, Mapping[str, Any]]):
        import passes  # noqa: F401  (the pass library registers itself on import)

        load_entry_points()
        self.plan, self.context = plan, context
        self.chosen: dict[str, Pass] = {}  # label -> pass
        self.why: dict[str, str] = {}
        self.configured = {name: self.instantiate(name, _options_path(plan, name)) for name in plan.pass_options}

    def instantiate(self, name: str, where: str, base: Pass | None = None) -> Pass:
        cls = PASSES.get(name)
        if cls is None:
            close = difflib.get_close_matches(name, list(PASSES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.plan.error(where, f"unknown pass '{name}' (registered: {', '.join(sorted(PASSES))}){hint}")
        p = cls.from_plan(self.plan, self.plan.pass_options.get(name, {}), _options_path(self.plan, name)) \
            if base is None else base
        extra = self.context.get(name)
        return dataclasses.replace(p, **extra) if extra else p

    def default(self, fact: str, where: str) -> Pass | None:
        """The pass declaring itself the default provider of ``fact``, configured by the plan."""
        cls = provider_of(fact, "default_for")
        return None if cls is None else self.instantiate(cls.name, where)

    def provider(self, fact: str, needed_by: str) -> Pass:
        for p in [*self.chosen.values(), *self.configured.values()]:
            if fact in p.provides:
                return p
        default = self.default(fact, needed_by)
        if default is not None:
            return default
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
            b.add(b.provider(fact, why).for_goal(plan), f"goal '{fact}' ({why})")
    g = b.graph()
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(f"{u} ({g.edges[u, v]['fact']})" for u, v in cycle) + f" -> {cycle[0][0]}"
        raise PlanError(f"{plan.source.name}: the passes form a cycle: {path}")
    order = list(nx.lexicographical_topological_sort(g, key=lambda n: _order_key(g.nodes[n]["pass_"])))
    steps: list[Step | FixedPoint] = [Step(g.nodes[n]["pass_"], b.why[n]) for n in order]
    return Schedule(_with_fixed_point(b, steps), goals, g)


def _mask_pass(b: _Builder, rule: Any) -> Pass:
    """The mask pass configured by a mask-level rule: its criterion, density and scope."""
    where = f"{rule.path}.structure"
    base = b.default("masks", where)
    if base is None:
        raise b.plan.error(where, f"'{rule.structure}' needs a pass providing 'masks'; none is registered")
    aliases = {k: v for cls in PASSES.values() for k, v in cls.criterion_aliases.items()}
    options = {"criterion": aliases.get(rule.score, rule.score), "density": round(1.0 - rule.sparsity, 12),
               "scope": rule.scope or "global", "structure": rule.structure}
    fields = {f.name for f in dataclasses.fields(base)}
    unsupported = {k: v for k, v in options.items() if k not in fields}
    if "structure" in unsupported and rule.structure != "irregular":
        raise b.plan.error(where, f"'{rule.structure}' masks are not supported yet by pass '{base.name}' "
                                  f"(it makes irregular masks)")
    return dataclasses.replace(base, **{k: v for k, v in options.items() if k in fields})


def _check_criteria(plan: Plan) -> None:
    """Every rule's score names a criterion some registered pass provides."""
    known = sorted({f.removeprefix("scores:") for cls in PASSES.values() for f in cls.offers()
                    if f.startswith("scores:")})
    for rule in plan.rules:
        if not any(cls.for_fact(f"scores:{rule.score}") is not None for cls in PASSES.values()):
            close = difflib.get_close_matches(rule.score, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise plan.error(f"{rule.path}.score", f"unknown criterion '{rule.score}' (registered: "
                                                   f"{', '.join(known)}){hint}")


def _role(role: str) -> type[Pass] | None:
    """The registered pass playing ``role`` in the dead-channel fixed point (None when none does)."""
    claims = sorted(name for name, cls in PASSES.items() if cls.fixed_point == role)
    if len(claims) > 1:
        raise PlanError(f"passes {', '.join(claims)} all declare fixed_point = '{role}'; one pass may")
    return PASSES[claims[0]] if claims else None


def _with_fixed_point(b: _Builder, steps: list[Step | FixedPoint]) -> list[Step | FixedPoint]:
    """The fixed point after the last pass that may leave channels dead or that removes them."""
    detect, apply = _role("detect"), _role("apply")
    passes = [s.pass_ for s in steps if isinstance(s, Step)]
    if detect is None or apply is None or not any(p.leaves_dead_channels for p in passes):
        return steps
    loop = FixedPoint(b.instantiate(detect.name, detect.name), b.instantiate(apply.name, apply.name),
                      DEAD_CHANNELS_WHY)
    at = 1 + max(i for i, s in enumerate(steps) if isinstance(s, Step)
                 and (s.pass_.leaves_dead_channels or isinstance(s.pass_, apply)))
    return [*steps[:at], loop, *steps[at:]]


def _pinned(b: _Builder, plan: Plan) -> Schedule:
    steps: list[Step | FixedPoint] = []
    facts: frozenset[str] = frozenset()
    mask_rules = iter([r for r in plan.rules if not r.removes_channels])
    masks = provider_of("masks", "default_for")
    for i, name in enumerate(plan.pipeline):
        where = f"pipeline[{i}]"
        rule = next(mask_rules, None) if masks is not None and name == masks.name else None
        p = _mask_pass(b, rule) if rule is not None else b.configured.get(name) or b.instantiate(name, where)
        for link in rerun_chain(p.requires, facts, p.label(), from_scratch=False):
            facts = after(facts, link.pass_)
        missing = sorted(p.requires - facts)
        if missing:
            providers = sorted(n for n, cls in PASSES.items() if cls.for_fact(missing[0]) is not None)
            hint = f" (provided by: {', '.join(providers)})" if providers else ""
            raise plan.error(where, f"pass '{name}' requires {missing}, which no earlier pass provides{hint}")
        facts = after(facts, p)
        b.chosen[p.label()] = p
        steps.append(Step(p, "pinned by the plan's pipeline"))
    goals = goals_of(plan)
    for fact, why in goals:
        if fact not in facts:
            raise plan.error("pipeline", f"does not reach goal '{fact}' asked by {why}")
    return Schedule(steps, goals, b.graph())


def explain(plan: Plan, context: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    return schedule(plan, context).explain()


__all__: Sequence[str] = ["FixedPoint", "Schedule", "Step", "ensure", "explain", "goals_of", "run_schedule",
                          "schedule"]
