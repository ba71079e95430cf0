"""The pass protocol: a pass names the facts it needs and makes, and maps a CompileState to a new one.

Facts are plain strings (``traced``, ``shapes``, ``canonical``, ``groups``, ``scores:l2``, ``keep``,
``masks``, ``weights-trained``, ``removed``, ``fused``, ``exported``). Ordering comes from these
declarations (``graphprune.scheduler``); ``run_pipeline`` refuses a pass whose requirements are not met
and re-raises any failure with the pass name and the passes already run.

A pass is a frozen dataclass: its fields are its configuration, so ``fingerprint`` (a hash of name,
version and configuration) identifies its effect for a toolchain's cache. ``from_plan`` builds it from
a plan's ``[passes.NAME]`` options and ``for_fact`` says which configuration provides a fact (the
magnitude pass provides ``scores:l1`` with ``p=1``). Third-party passes register by subclassing, or
through the ``graphprune.passes`` entry-point group."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import time
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from graphprune import progress
from graphprune.errors import GraphpruneError, PipelineError, PlanError
from graphprune.state import CompileState

PASSES: dict[str, type[Pass]] = {}
ENTRY_POINT_GROUP = "graphprune.passes"


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()
    version: ClassVar[int] = 1  # bump when the pass's effect changes for the same configuration

    def run(self, state: CompileState) -> CompileState:
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            PASSES[cls.name] = cls

    @classmethod
    def for_fact(cls, fact: str) -> Pass | None:
        """A configuration of this pass that provides ``fact``, or None."""
        try:
            default = cls()
        except TypeError:
            return None
        return default if fact in default.provides else None

    @classmethod
    def from_plan(cls, plan: Any, options: Mapping[str, Any], where: str) -> Pass:
        """This pass configured by the plan's ``[passes.NAME]`` table (``where`` names it in errors)."""
        return configure(cls(), options, where, plan)

    def fingerprint(self) -> str:
        payload = {"pass": self.name, "version": self.version, "config": _canonical(self)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def label(self) -> str:
        """Name plus the configuration that differs from the defaults, for schedules and logs."""
        changed = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.compare and _is_simple(value) and value != _default(f):
                changed.append(f"{f.name}={value!r}")
        return f"{self.name}({', '.join(changed)})" if changed else self.name

    def as_fx_pass(self, carrier: StateCarrier | None = None) -> Any:
        """This pass as a ``torch.fx.passes.infra.pass_base.PassBase`` for torch.fx's ``PassManager``.
        Passes sharing one ``StateCarrier`` share analyses (groups, scores, keep) between calls."""
        from graphprune.fx_adapter import FxPass

        return FxPass(self, carrier)


def configure(instance: Pass, options: Mapping[str, Any], where: str, plan: Any = None) -> Pass:
    """``instance`` with ``options`` replacing its fields; an unknown key or a value of the wrong type
    is a PlanError naming ``where.key``."""
    fields = {f.name: f for f in dataclasses.fields(instance) if f.init}
    try:
        hints = typing.get_type_hints(type(instance))
    except Exception:  # an annotation that does not resolve at run time: judge by the defaults alone
        hints = {}
    changes = {}
    for key, value in options.items():
        path = f"{where}.{key}"
        prefix = plan.source.where(path) if plan is not None else path
        if key not in fields:
            raise PlanError(f"{prefix}: unknown option for pass '{instance.name}' "
                            f"(expected one of {', '.join(sorted(fields)) or 'nothing'})")
        default = getattr(instance, key)
        changes[key] = _coerce(value, default, prefix, _union_members(hints.get(key)))
    return dataclasses.replace(instance, **changes)


def _union_members(hint: Any) -> tuple[type, ...]:
    """The classes a field declares: a union's members (``int | str`` -> (int, str)), a plain class
    (``float`` -> (float,)); () for anything else (the default's type decides then)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for t in typing.get_args(hint) if isinstance(t, type))
    return (hint,) if isinstance(hint, type) and hint in (int, float, str, bool) else ()


def _coerce(value: Any, default: Any, where: str, union: tuple[type, ...] = ()) -> Any:
    """``value`` for a field with this default if it has the field's type: a member of the declared union
    (an ``int | str`` field takes both), else the default's type (an int for a float, a list for a tuple)."""
    if union and isinstance(value, union) and (bool in union or not isinstance(value, bool)):
        return value
    if float in union and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # a float field takes an int
    expected = " or ".join(t.__name__ for t in union if t is not type(None)) or type(default).__name__
    if default is None or isinstance(value, type(default)) and not (isinstance(value, bool)
                                                                      and not isinstance(default, bool)):
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        raise PlanError(f"{where}: expected {expected}, got {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    raise PlanError(f"{where}: expected {expected}, got {value!r}")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _is_simple(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, type(None))) or (
        isinstance(value, tuple) and all(isinstance(v, (int, float, str, bool)) for v in value))


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.compare}
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple, frozenset, set)):
        items = [_canonical(v) for v in obj]
        return sorted(items, key=repr) if isinstance(obj, (set, frozenset)) else items
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    if callable(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    return repr(obj)


def load_entry_points() -> list[str]:
    """Import third-party passes declared under the ``graphprune.passes`` entry-point group; returns
    the names they registered. A plugin that fails to import is an error naming it."""
    from importlib.metadata import entry_points

    before = set(PASSES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise GraphpruneError(f"pass plugin '{ep.name}' ({ep.value}) failed to import: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if isinstance(obj, type) and issubclass(obj, Pass) and obj.name:
            PASSES.setdefault(obj.name, obj)
    return sorted(set(PASSES) - before)


def run_pass(state: CompileState, p: Pass, why: str = "") -> CompileState:
    missing = p.requires - state.facts
    ran = [name for name, _ in state.history]
    if missing:
        raise PipelineError(f"pass '{p.name}' requires {sorted(missing)}; passes run so far: {ran}")
    start = time.perf_counter()
    try:
        with progress.stage(p.name):  # the command line's spinner names the running pass
            new = p.run(state)
    except GraphpruneError:
        raise
    except Exception as exc:
        raise PipelineError(f"pass '{p.name}' failed after {ran}: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start
    facts = {f for f in state.facts if not invalidated(f, p.invalidates)} | p.provides
    return new.with_(facts=frozenset(facts), history=(*state.history, (p.name, seconds)),
                     trail=(*state.trail, {"pass": p.label(), "why": why, "seconds": round(seconds, 4),
                                           "fingerprint": p.fingerprint()}))


def invalidated(fact: str, patterns: frozenset[str]) -> bool:
    """``scores:*`` in ``invalidates`` covers every ``scores:<criterion>`` fact."""
    return fact in patterns or any(p.endswith("*") and fact.startswith(p[:-1]) for p in patterns)


def run_pipeline(state: CompileState, passes: Iterable[Pass]) -> CompileState:
    for p in passes:
        state = run_pass(state, p)
    return state


class StateCarrier:
    """The compile state shared by fx-adapted passes across ``PassManager`` calls."""

    def __init__(self, example_inputs: tuple[Any, ...], name: str = "model"):
        self.example_inputs = tuple(example_inputs)
        self.name = name
        self.state: CompileState | None = None
