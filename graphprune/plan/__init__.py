"""Declarative plans: what to prune, how much, and what to emit (see ``docs/plans.md``).

``load_plan`` accepts a path (TOML/YAML/JSON), a recipe name, a dict or a ``Plan`` and returns a
validated ``Plan``; ``graphprune.scheduler`` turns it into a pipeline of passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphprune.errors import PlanError
from graphprune.plan.recipes import RECIPES, recipe_path
from graphprune.plan.schema import AllocateSpec, Budget, EmitSpec, Plan, PruneRule, read_plan, with_overrides
from graphprune.plan.source import PlanSource, read_plan_file

__all__ = ["RECIPES", "AllocateSpec", "Budget", "EmitSpec", "Plan", "PlanSource", "PruneRule", "load_plan",
           "with_overrides"]


def load_plan(plan: Any = None) -> Plan:
    if plan is None:
        return read_plan(PlanSource({}, "default plan"))
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, dict):
        return read_plan(PlanSource(plan, "plan"))
    if isinstance(plan, (str, Path)):
        path = Path(plan)
        if not path.exists() and isinstance(plan, str) and plan in RECIPES:
            source = read_plan_file(recipe_path(plan))
            source.name = f"recipe {plan}.toml"
            return read_plan(source)
        if not path.exists() and path.suffix == "":
            raise PlanError(f"plan '{plan}' is neither a file nor a recipe (recipes: {', '.join(sorted(RECIPES))})")
        return read_plan(read_plan_file(path))
    raise PlanError(f"plan must be a dict, a recipe name or a path to a .toml/.yaml/.json file, "
                    f"got {type(plan).__name__}")
