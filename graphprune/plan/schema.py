"""The plan's typed form and its validation.

A plan is read into frozen dataclasses up front; every problem is a ``PlanError`` whose message starts
with ``file:line: key.path`` and says what was expected and what was found. Keys are checked against the
tables below (one row per key), so adding an option is adding a row.

Precedence of overlapping ``[[prune]]`` rules: the **most specific selector wins** (see
``graphprune.plan.selectors``); two rules of equal specificity claiming one group is an error."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from graphprune.errors import InputError, PlanError
from graphprune.plan.budget import Budget, read_budget
from graphprune.plan.checks import Check, boolean, number, one_of, positive_int
from graphprune.plan.output_modes import outputs_expected
from graphprune.plan.source import PlanSource

REMOVABLE_STRUCTURES = ("channel", "filter", "heads")  # heads: whole attention heads
MASK_STRUCTURES = ("irregular", "shape")
NM_PATTERN = re.compile(r"^(\d+):(\d+)$")
SCOPES = ("local", "global")
EMIT_FORMATS = {"pt2": ".pt2", "onnx": ".onnx", "graphmodule": ".py"}  # format -> file suffix
LAYOUTS = ("auto", "channels_last", "contiguous")  # memory format of the result (passes/layout.py)
STATISTICS = ("exact", "renormalize")  # statistics over removed channels: original width, or the kept ones


def _structure(v: Any) -> str | None:
    if v in REMOVABLE_STRUCTURES or v in MASK_STRUCTURES:
        return None
    nm = NM_PATTERN.match(v) if isinstance(v, str) else None
    if nm and 0 < int(nm.group(1)) < int(nm.group(2)):
        return None
    return "one of 'channel', 'filter', 'heads', 'irregular', 'shape' or 'N:M' with 0 < N < M (e.g. '2:4')"


def _selector(v: Any) -> str | None:
    items = v if isinstance(v, list) else [v]
    ok = items and all(isinstance(s, str) and s.strip() for s in items)
    return None if ok else "a non-empty selector string (glob, 're:REGEX' or 'type:ClassName') or a list of them"


def _shape(v: Any) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)
    return None if ok else "a list of positive integers such as [1, 3, 224, 224]"


def _names(v: Any) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(s, str) for s in v)
    return None if ok else "a non-empty list of pass names"


RULE_KEYS: dict[str, Check] = {
    "select": _selector,
    "structure": _structure,
    "sparsity": number(0, 1, hi_open=True),
    "budget": lambda v: None if isinstance(v, dict) else ("a table such as { macs = 0.5 }, { params = 0.3 } or "
                                                          "{ latency = 0.5 }"),
    "score": lambda v: None if isinstance(v, str) and v else "a criterion name such as 'l2'",
    "scope": one_of(*SCOPES),
}
ALLOCATE_KEYS: dict[str, Check] = {
    "scope": one_of(*SCOPES),
    "round_to": positive_int,
    "max_per_group": number(0, 1, lo_open=True),
    "min_channels": positive_int,
    "exact": boolean,
    "statistics": one_of(*STATISTICS),
    "outputs": outputs_expected,
}
EMIT_KEYS: dict[str, Check] = {
    "format": one_of(*EMIT_FORMATS),
    "fuse": boolean,
    "path": lambda v: None if isinstance(v, str) and v else "an output file path",
    "dynamic_batch": boolean,
    "layout": one_of(*LAYOUTS),
}
MODEL_KEYS: dict[str, Check] = {"input_shape": _shape}
DATA_KEYS: dict[str, Check] = {
    "name": lambda v: None if isinstance(v, str) and v else
    "a dataset: 'digits', 'imagefolder:DIR', 'package.module:factory' or 'file.py:factory'",
    "batch_size": positive_int,
    "image_size": positive_int,
    "workers": lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "an integer >= 0",
    "val_split": number(0, 1, hi_open=True),
}
SHORTHAND = {"sparsity": "prune", "score": "prune", "round_to": "allocate", "min_channels": "allocate",
             "exact": "allocate", "scope": "allocate", "max_per_group": "allocate", "statistics": "allocate",
             "outputs": "allocate"}
PASS_SECTIONS = ("admm", "purify", "finetune")  # [admm] is sugar for [passes.admm]
TOP_KEYS = ("model", "prune", "allocate", "emit", "data", "passes", "pipeline", *PASS_SECTIONS, *SHORTHAND)


@dataclass(frozen=True)
class PruneRule:
    path: str  # "prune[0]": where the rule came from, for messages
    select: tuple[str, ...] = ("*",)
    structure: str = "channel"
    sparsity: float | None = None
    budget: Budget | None = None
    score: str = "l2"
    scope: str | None = None  # overrides [allocate].scope for this rule

    @property
    def removes_channels(self) -> bool:
        return self.structure in REMOVABLE_STRUCTURES


@dataclass(frozen=True)
class AllocateSpec:
    scope: str = "local"
    round_to: int = 1
    max_per_group: float = 1.0  # a group never loses more than this fraction of its channels
    min_channels: int = 1
    exact: bool = False
    statistics: str = "exact"  # graphprune.statistics: LayerNorm/RMSNorm/means over the original width
    outputs: Any = "keep"  # graphprune.zero_fill: "keep", "zero-fill", or a dict of leaf name -> mode


@dataclass(frozen=True)
class EmitSpec:
    format: str | None = None  # pt2 | onnx | graphmodule (a .py file of code plus weights)
    fuse: bool = False
    path: str | None = None  # where to write; the CLI's --out replaces it
    dynamic_batch: bool = True  # .pt2/.onnx with a dynamic dim 0 where the module allows it
    layout: str | None = None  # None: "auto" under a latency budget, else the module's own ("contiguous")

    def resolved(self) -> tuple[str, ...]:
        """The output path with the format's suffix (a path without suffix gets it)."""
        if self.path is None:
            return ()
        has_suffix = "." in self.path.rsplit("/", 1)[-1]
        return (self.path if has_suffix or not self.format else self.path + EMIT_FORMATS[self.format],)


@dataclass(frozen=True)
class Plan:
    rules: tuple[PruneRule, ...]
    allocate: AllocateSpec = AllocateSpec()
    emit: EmitSpec = EmitSpec()
    input_shape: tuple[int, ...] | None = None
    data: Mapping[str, Any] | None = None
    pass_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pipeline: tuple[str, ...] | None = None
    source: PlanSource = field(default_factory=lambda: PlanSource({}), compare=False, repr=False)

    def error(self, path: str, message: str) -> PlanError:
        return PlanError(f"{self.source.where(path)}: {message}")

    def to_dict(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            if hasattr(obj, "__dataclass_fields__"):
                return {f.name: plain(getattr(obj, f.name)) for f in fields(obj) if f.name != "source"}
            if isinstance(obj, (tuple, list)):
                return [plain(v) for v in obj]
            if isinstance(obj, Mapping):
                return {k: plain(v) for k, v in obj.items()}
            return obj
        return plain(self)


class _Reader:
    """Validates one plan source, raising at the first problem with its location."""

    def __init__(self, source: PlanSource):
        self.source = source

    def fail(self, path: str, message: str) -> PlanError:
        return PlanError(f"{self.source.where(path)}: {message}")

    def table(self, value: Any, path: str, keys: Mapping[str, Check]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {type(value).__name__} {value!r}")
        for key, v in value.items():
            check = keys.get(key)
            if check is None:
                raise self.unknown(f"{path}.{key}" if path else key, key, keys)
            expected = check(v)
            if expected:
                raise self.fail(f"{path}.{key}" if path else key, f"expected {expected}, got {v!r}")
        return dict(value)

    def unknown(self, path: str, key: str, known: Any) -> PlanError:
        close = difflib.get_close_matches(str(key), list(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return self.fail(path, f"unknown key '{key}' (expected one of {', '.join(sorted(known))}){hint}")

    def budget(self, value: dict[str, Any], path: str) -> Budget:
        return read_budget(value, path, self.fail, self.unknown)

    def rule(self, value: Any, path: str) -> PruneRule:
        raw = self.table(value, path, RULE_KEYS)
        has_sparsity, has_budget = "sparsity" in raw, "budget" in raw
        if has_sparsity == has_budget:
            found = "both" if has_sparsity else "neither"
            raise self.fail(path, f"expected exactly one of 'sparsity' or 'budget', found {found}")
        select = raw.get("select", "*")
        nm = NM_PATTERN.match(str(raw.get("structure", "")))
        if nm and has_sparsity and abs(raw["sparsity"] - (1 - int(nm.group(1)) / int(nm.group(2)))) > 1e-9:
            raise self.fail(f"{path}.sparsity", f"structure '{raw['structure']}' keeps {nm.group(1)} of every "
                                                f"{nm.group(2)} weights: sparsity must be "
                                                f"{1 - int(nm.group(1)) / int(nm.group(2)):g}, got {raw['sparsity']!r}")
        if has_budget and raw.get("structure", "channel") not in REMOVABLE_STRUCTURES:
            raise self.fail(f"{path}.budget", f"a budget needs a removable structure (channel, filter, heads); "
                                              f"structure '{raw['structure']}' only masks weights: give sparsity")
        return PruneRule(
            path=path,
            select=tuple(select) if isinstance(select, list) else (select,),
            structure=raw.get("structure", "channel"),
            sparsity=float(raw["sparsity"]) if has_sparsity else None,
            budget=self.budget(raw["budget"], f"{path}.budget") if has_budget else None,
            score=raw.get("score", "l2"),
            scope=raw.get("scope"),
        )

    def read(self) -> Plan:
        data = self.source.data
        if not isinstance(data, dict):
            raise self.fail("", f"expected a table of plan sections, got {type(data).__name__}")
        for key in data:
            if key not in TOP_KEYS:
                raise self.unknown(key, key, TOP_KEYS)
        shorthand = {k: data[k] for k in SHORTHAND if k in data}
        self.table(shorthand, "", {k: (RULE_KEYS | ALLOCATE_KEYS)[k] for k in SHORTHAND})
        prune = data.get("prune", [])
        if isinstance(prune, dict):
            prune = [prune]
        if not isinstance(prune, list):
            raise self.fail("prune", f"expected a list of [[prune]] tables, got {type(prune).__name__}")
        rules = [self.rule(r, f"prune[{i}]") for i, r in enumerate(prune)]
        budgets = [r for r in rules if r.budget is not None]
        if len(budgets) > 1:
            raise self.fail(f"{budgets[1].path}.budget", f"only one rule may carry a budget ({budgets[0].path} "
                                                        f"already does): a budget is one global target")
        if not rules:
            rules = [PruneRule(path="sparsity" if "sparsity" in shorthand else "default",
                               sparsity=float(shorthand.get("sparsity", 0.5)), score=shorthand.get("score", "l2"))]
        elif "sparsity" in shorthand or "score" in shorthand:
            raise self.fail("sparsity" if "sparsity" in shorthand else "score",
                            "top-level sparsity/score is shorthand for a single [[prune]] rule; "
                            "move it into the [[prune]] tables")
        allocate = self.table(data.get("allocate", {}), "allocate", ALLOCATE_KEYS)
        for key in ("round_to", "min_channels", "exact", "scope", "max_per_group", "statistics", "outputs"):
            if key in shorthand:
                allocate.setdefault(key, shorthand[key])
        emit = self.table(data.get("emit", {}), "emit", EMIT_KEYS)
        self.check_emit(emit)
        pipeline = data.get("pipeline")
        if pipeline is not None and (expected := _names(pipeline)):
            raise self.fail("pipeline", f"expected {expected}, got {pipeline!r}")
        return Plan(
            rules=tuple(rules),
            allocate=AllocateSpec(**allocate),
            emit=EmitSpec(**emit),
            input_shape=tuple(self.table(data.get("model", {}), "model", MODEL_KEYS).get("input_shape", ())) or None,
            data=self.table(data["data"], "data", DATA_KEYS) if "data" in data else None,
            pass_options=self.pass_options(data),
            pipeline=tuple(pipeline) if pipeline is not None else None,
            source=self.source,
        )

    def check_emit(self, emit: dict[str, Any]) -> None:
        fmt, path = emit.get("format"), emit.get("path")
        if fmt and path and "." in path.rsplit("/", 1)[-1] and not path.endswith(EMIT_FORMATS[fmt]):
            raise self.fail("emit.path", f"suffix of {path!r} does not match emit.format = '{fmt}' "
                                         f"(expected {EMIT_FORMATS[fmt]})")
        suffixes = tuple(EMIT_FORMATS.values())
        if path and not fmt and not path.endswith(suffixes):
            raise self.fail("emit.path", f"expected a file ending in {', '.join(suffixes)} (or set emit.format), "
                                         f"got {path!r}")

    def pass_options(self, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        options: dict[str, dict[str, Any]] = {}
        passes = data.get("passes", {})
        if not isinstance(passes, dict):
            raise self.fail("passes", f"expected a table of [passes.NAME] tables, got {type(passes).__name__}")
        for name, table in passes.items():
            if not isinstance(table, dict):
                raise self.fail(f"passes.{name}", f"expected a table of options, got {table!r}")
            options[name] = dict(table)
        for name in PASS_SECTIONS:
            if name in data:
                if not isinstance(data[name], dict):
                    raise self.fail(name, f"expected a table of options, got {data[name]!r}")
                options[name] = {**options.get(name, {}), **data[name]}
        return options


def read_plan(source: PlanSource) -> Plan:
    return _Reader(source).read()


def with_overrides(plan: Plan, overrides: Mapping[str, Any]) -> Plan:
    """Apply ``compile(..., sparsity=..., round_to=...)`` / CLI flags on top of a plan: ``sparsity`` and
    ``score`` replace the value of every rule that has one; the rest replace ``[allocate]`` keys."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return plan
    reader = _Reader(PlanSource({}, "overrides"))
    try:
        reader.table(overrides, "", {k: (RULE_KEYS | ALLOCATE_KEYS)[k] for k in SHORTHAND})
    except PlanError as exc:  # keyword arguments and CLI flags are inputs, not plan keys
        raise InputError(str(exc).removeprefix("overrides: ")) from None
    rules = tuple(replace(r, **{k: overrides[k] for k in ("score",) if k in overrides},
                          **({"sparsity": float(overrides["sparsity"])}
                             if "sparsity" in overrides and r.sparsity is not None else {}))
                  for r in plan.rules)
    allocate = replace(plan.allocate, **{k: v for k, v in overrides.items() if k in ALLOCATE_KEYS})
    return replace(plan, rules=rules, allocate=allocate)
