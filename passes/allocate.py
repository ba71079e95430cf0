"""allocate: turn per-channel scores into a keep decision per channel, rule by rule.

Each group is governed by the most specific ``[[prune]]`` rule selecting it (``graphprune.plan.selectors``).
A ``sparsity`` rule removes that fraction of each of its groups (scope local) or of all its groups'
channels together (scope global, one threshold on mean-normalised scores). A ``heads`` rule decides for
the groups whose channels are whole attention heads only (``graphprune.channels.heads``); the other groups
it selects are kept whole. At most one ``budget`` rule
then searches its groups' decisions so the whole model's MACs or parameters meet the target within
2 %, with every other rule's decision fixed. Frozen channels are always kept; see
``graphprune.allocation`` for floors, caps and ``round_to``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphprune.allocation import BUDGET_TOLERANCE, Candidate, Limits, decide, global_sparsity, search
from graphprune.costs import CostModel, cost_model
from graphprune.latency_budget import CALIBRATION
from graphprune.latency_model import latency_model, profile
from graphprune.passes import Pass
from graphprune.plan import AllocateSpec, Budget, Plan, PruneRule
from graphprune.plan.selectors import assign_rules
from graphprune.state import CompileState, Options


@dataclass(frozen=True)
class Allocate(Pass):
    name = "allocate"
    provides = frozenset({"keep"})
    default_for = frozenset({"keep"})
    plan: Plan | None = None  # None: one rule from ``state.options`` (sparsity, score, round_to, ...)

    @classmethod
    def from_plan(cls, plan: Any, options: Mapping[str, Any], where: str) -> Allocate:
        """Built from the whole plan (its rules and ``[allocate]``), not from a ``[passes.allocate]`` table."""
        return cls(plan=plan)

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        rules = self.plan.rules if self.plan is not None else ()
        return frozenset({"groups", *(f"scores:{r.score}" for r in rules if r.removes_channels)})

    def run(self, state: CompileState) -> CompileState:
        plan = self.plan or plan_from_options(state.options)
        spec = plan.allocate
        missing = sorted({r.score for r in plan.rules if r.removes_channels} - set(state.scores))
        if missing:
            raise KeyError(f"no scores named {missing}; have {sorted(state.scores)}")
        groups = state.channels.groups
        assigned = assign_rules(plan, groups, state.selectable_modules())
        labels = state.channels.labels
        keep = np.ones(int(labels.max()) + 1 if len(labels) else 0, dtype=bool)
        limits = Limits(spec.round_to, spec.min_channels, spec.max_per_group, spec.exact)
        record: dict[str, dict] = {}
        budget_rule, budget_candidates = None, []
        for rule in plan.rules:
            if not rule.removes_channels:
                continue
            mine = [g for g, r in zip(groups, assigned) if r is rule and (g.heads or rule.structure != "heads")]
            if not any(g.num_prunable for g in mine) and rule.path.startswith("prune["):
                raise plan.error(rule.path, _nothing_prunable(rule, mine))
            candidates = [Candidate.of(g, state.scores[rule.score][g.index], spec.exact) for g in mine]
            scope = rule.scope or spec.scope
            if rule.budget is not None:
                budget_rule, budget_candidates = rule, candidates
                continue
            keeps = (global_sparsity(candidates, limits, rule.sparsity) if scope == "global"
                     else decide(candidates, limits, scope="local", parameter=rule.sparsity))
            for c, k in zip(candidates, keeps):
                keep[c.group.labels] = k
            record[rule.path] = _summary(candidates, keeps)
        if budget_rule is not None:
            record[budget_rule.path] = Allocate._meet_budget(state, plan, budget_rule, budget_candidates, keep,
                                                              limits)
        return state.with_(keep=keep, artifacts={**state.artifacts, "allocate": record})

    @staticmethod
    def _meet_budget(state: CompileState, plan: Plan, rule: PruneRule, candidates: list[Candidate],
                     keep: np.ndarray, limits: Limits) -> dict:
        budget = rule.budget
        model, target, extra = _budget_model(state, budget)
        labels = state.channels.labels

        def measure(keeps: list[np.ndarray]) -> float:
            for c, k in zip(candidates, keeps):
                keep[c.group.labels] = k
            return model.count(keep[labels]) / model.dense

        scope = rule.scope or plan.allocate.scope
        keeps, achieved = search(candidates, limits, scope, measure, target)
        measure(keeps)
        if achieved > target * (1 + BUDGET_TOLERANCE) and budget.metric != "latency":  # latency: measured next
            raise plan.error(f"{rule.path}.budget.{budget.metric}",
                             f"{target} cannot be met: removing every channel the plan allows "
                             f"leaves {achieved:.3f} of the dense {budget.metric} (frozen channels, "
                             f"max_per_group={limits.max_fraction}, min_channels={limits.min_channels})")
        return {**_summary(candidates, keeps), "budget": {"metric": budget.metric, "asked": budget.ratio,
                                                          **extra, "estimated": round(achieved, 4)}}


def _budget_model(state: CompileState, budget: Budget) -> tuple[CostModel, float, dict]:
    """The cost model a budget is met against, the fraction to search for and what to record. A latency
    budget searches the per-op model (``graphprune.latency_model``) for the target the calibration loop
    sets (``graphprune.latency_budget``; the asked fraction on the first compile), on the profile it
    carries or, on the first compile, one measured here."""
    if budget.metric != "latency":
        return cost_model(state, budget.metric), budget.ratio, {}
    calibration = state.artifacts.get(CALIBRATION, {})
    node_ms = calibration.get("profile_ms") or profile(state.gm, state.example_inputs, batch=budget.batch,
                                                       num_threads=budget.threads)
    target = calibration.get("target", budget.ratio)
    return latency_model(state, node_ms), target, {"target": round(target, 4), "profile_ms": node_ms}


def plan_from_options(options: Options) -> Plan:
    rule = PruneRule(path="options", sparsity=options.sparsity, score=options.score)
    return Plan(rules=(rule,), allocate=AllocateSpec(round_to=options.round_to, min_channels=options.min_channels,
                                                     exact=options.exact, statistics=options.statistics))


def _summary(candidates: list[Candidate], keeps: list[np.ndarray]) -> dict:
    return {"groups": len(candidates), "channels": int(sum(c.group.size for c in candidates)),
            "removed": int(sum(c.group.size - int(k.sum()) for c, k in zip(candidates, keeps)))}


def _nothing_prunable(rule: PruneRule, groups: list) -> str:
    if not groups and rule.structure == "heads":
        return (f"structure 'heads' finds no attention heads in its selection (select={list(rule.select)}): it "
                f"needs the projections whose output is reshaped into (heads, head_dim), such as the q/k/v "
                f"projections or the attention module holding them")
    if not groups:
        return (f"selects no channel group (select={list(rule.select)}): every selected module is governed "
                f"by a more specific rule or carries no prunable channel")
    reasons = sorted({r for g in groups for r in g.frozen_reasons} or {"not anchored in an activation"})
    hint = ("; [allocate] outputs = 'zero-fill' prunes them (filled back with zeros)"
            if "reaches the model output" in reasons else "")
    return (f"structure '{rule.structure}' cannot be carried by the selection: all {len(groups)} selected "
            f"groups are frozen ({'; '.join(reasons[:3])}){hint}")
