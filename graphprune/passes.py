"""The pass protocol: a pass names the facts it needs and makes, and maps a CompileState to a new one.

Facts are plain strings (``traced``, ``shapes``, ``canonical``, ``groups``, ``scores:l2``, ``keep``,
``masks``, ``weights-trained``, ``removed``, ``fused``, ``exported``). Beside them a pass declares its
place (class variables, xDSL ``ModulePass`` style): its ``stage``, the facts it is the default provider
of (``default_for``) or the re-runnable analysis of (``reruns``), whether it may leave whole channels
dead (``leaves_dead_channels``), its role in the dead-channel fixed point (``fixed_point``) and the
rule criteria its weight scores serve (``criterion_aliases``). ``graphprune.scheduler`` orders passes
from these declarations alone; ``run_pipeline`` (``graphprune.pipeline``) refuses a pass whose
requirements are not met and re-raises any failure with the pass name and the passes already run.

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
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from graphprune.errors import GraphpruneError, PipelineError, PlanError
from graphprune.pipeline import PASSES, StateCarrier, invalidated, run_pass, run_pipeline
from graphprune.state import CompileState

ENTRY_POINT_GROUP = "graphprune.passes"
NO_ALIASES: Mapping[str, str] = types.MappingProxyType({})


class Stage(enum.IntEnum):
    """Where a pass sits in a pipeline when its facts leave the order open (the scheduler sorts by stage,
    then name). Spaced by ten so that a new pass can sit between two: ``stage = Stage.SCORE + 5``."""

    CAPTURE = 10  # trace the model
    SHAPES = 20  # re-propagate shapes
    CANONICALIZE = 30
    ANALYZE = 40  # channel groups
    SCORE = 50
    TRAIN = 60  # constrained training that decides what to keep (ADMM)
    DECIDE = 70  # keep decisions; a pass that declares no stage sits here
    MASK = 80
    REMOVE = 90
    DEAD_CHANNELS = 100  # find channels nothing reads
    PURIFY = 110
    RECOVER = 120  # recovery training
    FUSE = 130
    EMIT = 140
    MEASURE = 150


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()
    version: ClassVar[int] = 1  # bump when the pass's effect changes for the same configuration
    # what the scheduler reads (graphprune.scheduler names no pass; these say where each one goes)
    stage: ClassVar[int] = Stage.DECIDE
    default_for: ClassVar[frozenset[str]] = frozenset()  # facts it provides unless the plan configures another
    reruns: ClassVar[frozenset[str]] = frozenset()  # an analysis re-run when a reader finds these invalidated
    leaves_dead_channels: ClassVar[bool] = False  # may leave whole channels dead: the dead-channel fixed
    #                                               point (detect -> apply, repeated) is scheduled after it
    fixed_point: ClassVar[str] = ""  # "detect" (finds dead channels, provides keep) | "apply" (removes them)
    criterion_aliases: ClassVar[Mapping[str, str]] = NO_ALIASES  # a mask rule's score -> the criterion of
    #                                                              the weight scores this pass gives for it

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
    def offers(cls) -> frozenset[str]:
        """Every fact some configuration of this pass provides (the default one's, unless overridden)."""
        try:
            return frozenset(cls().provides)
        except TypeError:
            return frozenset()

    @classmethod
    def from_plan(cls, plan: Any, options: Mapping[str, Any], where: str) -> Pass:
        """This pass configured by the plan's ``[passes.NAME]`` table (``where`` names it in errors)."""
        return configure(cls(), options, where, plan)

    def for_goal(self, plan: Any) -> Pass:
        """This pass as the provider of a goal the plan asks for (``emit`` takes the plan's output paths)."""
        return self

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


def options_of(config: type, **defaults: tuple[Any, Any]) -> type:
    """A frozen dataclass with ``config``'s fields, types and defaults, for a pass to inherit as its
    options, so a run configuration declared once (``AdmmConfig``, ``RecoveryConfig``) gives the plan
    option names and their defaults; ``defaults`` replaces a field's (type, default) where the pass's
    differs (``sparsity=(float | None, None)``: from the plan's rules). None of ``config``'s validation
    runs here: the pass builds ``config`` from its options when it runs, and that validates them."""
    hints = typing.get_type_hints(config)
    specs = []
    for f in dataclasses.fields(config):
        if f.name in defaults:
            kind, default = defaults[f.name]
            specs.append((f.name, kind, dataclasses.field(default=default)))
        elif f.default is not dataclasses.MISSING:
            specs.append((f.name, hints[f.name], dataclasses.field(default=f.default)))
        else:
            specs.append((f.name, hints[f.name], dataclasses.field(default_factory=f.default_factory)))
    return dataclasses.make_dataclass(f"{config.__name__}Options", specs, frozen=True)


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


_SCANNED: set[tuple] = set()  # (entry_points function, sys.path signature) already scanned


def _path_signature() -> tuple:
    """sys.path with each entry's modification time: installing a distribution into any of them
    changes it, so a plugin installed while the process runs is still found."""
    signature = []
    for entry in sys.path:
        try:
            signature.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            signature.append((entry, None))
    return tuple(signature)


def load_entry_points() -> list[str]:
    """Import third-party passes declared under the ``graphprune.passes`` entry-point group; returns
    the names they registered. A plugin that fails to import is an error naming it. Scanning every
    installed distribution's metadata costs ~80 ms (a tenth of compiling resnet50), so it runs again
    only when the installed set may have changed (``_path_signature``)."""
    from importlib import metadata

    key = (metadata.entry_points, _path_signature())
    if key in _SCANNED:
        return []
    before = set(PASSES)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise GraphpruneError(f"pass plugin '{ep.name}' ({ep.value}) failed to import: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if isinstance(obj, type) and issubclass(obj, Pass) and obj.name:
            PASSES.setdefault(obj.name, obj)
    _SCANNED.add(key)
    return sorted(set(PASSES) - before)


__all__ = ["ENTRY_POINT_GROUP", "PASSES", "Pass", "PipelineError", "Stage", "StateCarrier", "configure", "invalidated",
           "load_entry_points", "options_of", "run_pass", "run_pipeline"]
