"""Which ``[[prune]]`` rule governs which pruning group.

A selector is a glob on module names (``layer3.*``), a regular expression (``re:layer[34]\\..*``) or a
module type (``type:Conv2d``). A group is governed through its *owners*: the modules whose output width
it is (conv/linear filters, norm parameters, loose parameters), not the consumers that merely read it.

Precedence: the most specific selector wins. Specificity ranks exact names over patterns over types
over ``*``, and patterns by their number of literal characters; two different rules tied at the top
for one group is a conflict, reported with both rules and the group."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import nn

from graphprune.channels.groups import PruningGroup
from graphprune.ops.registry import inherited
from graphprune.plan.schema import Plan, PruneRule


@dataclass(frozen=True)
class Selector:
    text: str

    @property
    def specificity(self) -> tuple[int, int]:
        t = self.text
        if t == "*":
            return (0, 0)
        if t.startswith("type:"):
            return (1, 0)
        if t.startswith("re:"):
            return (2, len(re.sub(r"[\\.^$*+?{}\[\]|()]", "", t[3:])))
        if any(c in t for c in "*?["):
            return (2, len(re.sub(r"[*?\[\]]", "", t)))
        return (3, len(t))

    def matches(self, name: str, module: nn.Module) -> bool:
        t = self.text
        if t.startswith("type:"):
            return any(cls.__name__ == t[5:] for cls in type(module).__mro__)
        if t.startswith("re:"):
            return re.fullmatch(t[3:], name) is not None
        return fnmatch.fnmatchcase(name, t)


def rule_specificity(rule: PruneRule, name: str, module: nn.Module) -> tuple[int, int] | None:
    """The best specificity among the rule's selectors that match, or None."""
    hits = [s.specificity for s in map(Selector, rule.select) if s.matches(name, module)]
    return max(hits) if hits else None


def group_owners(group: PruningGroup, modules: Mapping[str, nn.Module]) -> list[str]:
    """Modules whose width the group is; consumers only if the group has nothing else."""
    owners, readers = [], []
    for m in group.members:
        path = m.fqn.rpartition(".")[0]
        module = modules.get(path)
        reads = module is not None and m.fqn.endswith("weight") and m.dim == inherited(module, "input_weight_dim")
        (readers if reads else owners).append(path)
    return sorted(set(owners or readers))


def validate_selectors(plan: Plan, modules: Mapping[str, nn.Module]) -> None:
    """Every selector must match at least one module of the model."""
    for rule in plan.rules:
        for i, text in enumerate(rule.select):
            if text == "*":
                continue  # everything, including a model whose only module is the root
            sel = Selector(text)
            if text.startswith("re:"):
                try:
                    re.compile(text[3:])
                except re.error as exc:
                    raise plan.error(_select_path(rule, i), f"invalid regular expression {text[3:]!r}: {exc}") \
                        from None
            if not any(sel.matches(name, m) for name, m in modules.items() if name):
                sample = ", ".join(list(n for n in modules if n)[:4])
                raise plan.error(_select_path(rule, i), f"selector {text!r} matches no module of the model "
                                                        f"(module names look like: {sample})")


def _select_path(rule: PruneRule, i: int) -> str:
    return f"{rule.path}.select" if len(rule.select) == 1 else f"{rule.path}.select[{i}]"


def assign_rules(plan: Plan, groups: Iterable[PruningGroup], modules: Mapping[str, nn.Module]
                 ) -> list[PruneRule | None]:
    """The governing rule per group (None: no rule selects it, the group is kept whole)."""
    assigned: list[PruneRule | None] = []
    for group in groups:
        best: dict[int, tuple[tuple[int, int], PruneRule]] = {}
        for owner in group_owners(group, modules):
            module = modules.get(owner)
            for k, rule in enumerate(plan.rules):
                spec = rule_specificity(rule, owner, module) if module is not None else None
                if spec is not None and (k not in best or spec > best[k][0]):
                    best[k] = (spec, rule)
        if not best:
            assigned.append(None)
            continue
        top = max(spec for spec, _ in best.values())
        winners = [rule for spec, rule in best.values() if spec == top]
        if len({(r.structure, r.sparsity, r.budget, r.score, r.scope) for r in winners}) > 1:
            raise plan.error(winners[1].path, f"conflicts with {winners[0].path}: both select group "
                                              f"'{group.describe()}' with equal specificity; make one "
                                              f"selector more specific")
        assigned.append(winners[0])
    return assigned
