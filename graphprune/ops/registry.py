"""The op table: everything graphprune knows about one op, in one ``OpSpec`` per op key.

Keys are what an fx node calls: a function object (``torch.cat``, ``operator.add``), a method name
(``Method("view")``), or a module class (``nn.Conv2d``). An op family module (``graphprune.ops.conv``,
``graphprune.ops.norm``...) declares, next to each other, how channels flow through its ops
(``propagate``, plus ``rewrite`` for constants baked into the node), their liveness kind, their shape
formula, how a module's attributes follow its shrunk parameters (``resize``) and their traits. The
consumers (liveness, costs, removal, purify, fuse, scoring, selectors, ADMM) ask this table; none keeps a
type list of its own, so a layer declared here is supported everywhere at once.

A node whose key has no channel rule is not guessed at: the analysis freezes every channel it touches
and reports the op by name. Lookups differ in how they treat subclasses, for a reason each:

- channel rules (and the liveness kind declared with them) pass to a subclass only if it keeps its
  base's ``forward``: a subclass that rewrites forward may mix channels differently;
- shape formulas are exact-type only, for the same reason and because a wrong shape is never guessed;
- traits, ``resize``, ``resize_block``, ``input_weight_dim``, ``functional`` and ``fixed_scale`` describe
  *parameters*, which a subclass inherits whatever its forward does, so they follow ``isinstance``
  (``inherited``);
- ``unbatched_ndim`` describes the forward's input, exact-type only (``declared``).
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

Key = Any  # function object | Method | module class


@dataclass(frozen=True)
class Method:
    """Key for ``call_method`` nodes."""

    name: str


def methods(*names: str) -> list[Method]:
    return [Method(n) for n in names]


class Liveness(enum.Enum):
    """How an op treats an all-zero channel and which input channels it reads, for unused-path removal
    (``graphprune.liveness.ops`` turns a kind into exact zero/read behaviour). Declared with the rule,
    so renaming a rule function cannot change what liveness concludes."""

    GENERIC = "generic"  # reads every input channel, never known to output zero
    SHAPE_QUERY = "shape-query"  # reads no values
    LINEAR = "linear"  # conv / linear: a dead output channel, an unread input column
    NORM_MODULE = "norm-module"  # per-channel norm layer computing batch/instance/group norm exactly
    NORM_ACT_MODULE = "norm-act-module"  # a norm module, then its ``drop`` and ``act`` submodules (timm)
    NORM_FUNCTIONAL = "norm-functional"  # F.batch_norm
    LAYER_NORM = "layer-norm"  # statistics over the last dim: reads every channel, zero where the affine is
    OPAQUE_PER_CHANNEL = "opaque-per-channel"  # channel c from channel c, never known to output zero
    MOVEMENT = "movement"  # pure data movement: each output value is an input value
    PAD = "pad"  # movement plus padding values
    PER_CHANNEL = "per-channel"  # channel c of the result from channel c only, zero kept (pooling, PReLU, GLU)
    ELEMENTWISE = "elementwise"  # per channel; whether zero is kept depends on the function
    REDUCTION = "reduction"  # over some dims; zero kept by sums and means
    CONTRACTION = "contraction"  # matmul / einsum: sums of products
    ATTENTION = "attention"  # softmax(q k^T) v


class Trait(enum.Enum):
    """What a consumer needs to know about a layer's parameters, said once where the layer is declared."""

    WEIGHT_LAYER = "weight-layer"  # its weight multiplies the input: conv, transposed conv, linear
    REARRANGES = "rearranges"  # one input, every value once in the output (reshape, permute): canonicalize
    # composes chains of these into one index map (a channel shuffle becomes one index_select)
    FILTER_ROWS = "filter-rows"  # weight dim 0 is an output channel's filter: scored, masked, purified
    TRANSPOSED = "transposed"  # weight is (in, out / groups, ...)
    PER_CHANNEL_NORM = "per-channel-norm"  # affine per channel, statistics per channel or group (batch/group norm)
    RUNNING_STATS = "running-stats"  # batch statistics in train mode, running ones in eval (batch norm)
    GROUP_STATS = "group-stats"  # statistics over groups of channels (group norm)
    INSTANCE_STATS = "instance-stats"  # statistics per sample and channel (instance norm)
    FOLDABLE_INTO_CONV = "foldable-into-conv"  # in eval mode a per-channel affine an adjacent conv absorbs


Resize = Callable[[nn.Module, "int | None"], None]  # (module, new input channels or None)
# (block, kept of its subtree's changed tensors by relative name: {"qkv.weight": {0: [kept rows]}}), for
# ``graphprune.apply(..., form="module")``: the attributes of a block the graph traces through (attention
# heads, model widths), which depend on *how* its children were cut (whole heads or head dims)
BlockResize = Callable[[nn.Module, "Mapping[str, Mapping[int, list[int]]]"], None]
# A norm as the path criteria see it: (per-channel scale, channel dim or None for the trailing dims)
FixedScale = Callable[[nn.Module], "tuple[Any, int | None]"]


@dataclass(frozen=True)
class OpSpec:
    """One op key's whole description. Every field is optional: an op may have a shape formula and no
    channel rule yet (it is then frozen by the analysis), or traits only (an abstract base class)."""

    key: Key
    name: str = ""  # the channel rule's name, for reports
    propagate: Callable[..., Any] | None = None
    rewrite: Callable[..., None] | None = None
    liveness: Liveness = Liveness.GENERIC
    shape: Callable[..., Any] | None = None
    resize: Resize | None = None
    resize_block: BlockResize | None = None
    input_weight_dim: int | None = None  # the weight dim that reads the input (selectors: owner vs reader)
    functional: Callable[..., Any] | None = None  # the torch function a module applies its weight with
    fixed_scale: FixedScale | None = None  # a norm reduced to its scale (SynFlow / PX path copies)
    unbatched_ndim: int | None = None  # input ndim read as one unbatched sample (channels in dim 0)
    traits: frozenset[Trait] = frozenset()
    # How an element-wise op, reduction or pad treats an all-zero channel, for unused-path removal (the
    # zero kinds of ``graphprune.liveness.ops``: copy | add | mul | div | none), or a function
    # ``(node, module) -> kind`` where the answer depends on the call (clamp bounds, pad value).
    zero: str | Callable[..., str] = "none"
    # MACs an op adds to the cost model beyond weight layers: ``(out, operand, own layout) -> [(dense MACs,
    # element sets whose kept fraction scales them)]``, where ``operand(index, name)`` is the (TensorInfo,
    # layout) of argument ``index`` or keyword ``name`` (``graphprune.costs``).
    cost: Callable[..., list] | None = None
    # The rewrite ``(node, kept)`` that keeps a statistic the op takes over channels (LayerNorm, RMSNorm, a
    # mean) over their original width, so that removing channels which are zero at its input is exact:
    # remove-channels runs it after ``rewrite`` when the plan says ``statistics = "exact"``
    # (``graphprune.statistics``); without it, a cut through the statistic is reported inexact.
    statistics: Callable[..., None] | None = None
    # The module form of such a statistic (``graphprune.apply(..., form="module")``): ``(module, ratio)``
    # rescales the layer's own parameters so that over the kept channels (``ratio`` of the original width)
    # it computes what the full-width kernel computes; a statistic without it refuses the module form.
    fold_full_width: Callable[[Any, float], None] | None = None


SPECS: dict[Key, OpSpec] = {}


def declare(keys: Iterable[Key], **fields: Any) -> None:
    """Add ``fields`` to the spec of every key (traits are added to those already declared)."""
    for key in keys:
        spec = SPECS.get(key) or OpSpec(key)
        if "traits" in fields:
            fields = {**fields, "traits": spec.traits | frozenset(fields["traits"])}
        SPECS[key] = dataclasses.replace(spec, **fields)


def register(keys: Iterable[Key], rewrite: Callable[..., None] | None = None, *,
             liveness: Liveness = Liveness.GENERIC) -> Callable:
    """Decorator: ``fn`` is the channel rule of every key, with its liveness kind."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        declare(keys, name=fn.__name__, propagate=fn, rewrite=rewrite, liveness=liveness)
        return fn

    return deco


def formula(keys: Iterable[Key]) -> Callable:
    """Decorator: ``fn`` is the shape formula of every key (``graphprune.shapes.registry.Call`` -> Meta)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        declare(keys, shape=fn)
        return fn

    return deco


def resizer(keys: Iterable[type]) -> Callable:
    """Decorator: ``fn(module, new_in)`` sets the module's size attributes from its shrunk parameters."""

    def deco(fn: Resize) -> Resize:
        declare(keys, resize=fn)
        return fn

    return deco


def block_resizer(keys: Iterable[type]) -> Callable:
    """Decorator: ``fn(block, kept)`` sets a block's width attributes after its children shrank."""

    def deco(fn: BlockResize) -> BlockResize:
        declare(keys, resize_block=fn)
        return fn

    return deco


RULE_FIELDS = ("name", "propagate", "rewrite", "liveness", "zero", "statistics")


TWINS: dict[Key, Key] = {}  # key -> the key whose declaration ``alias`` gave it


def alias(new_keys: Iterable[Key], like: Key, fields: Iterable[str] = RULE_FIELDS) -> None:
    """Give ``new_keys`` ``like``'s ``fields`` (a third-party layer whose channels flow as a torch one's;
    its shape formula, which reads module attributes, and its traits are declared separately)."""
    source = SPECS[like]
    for key in new_keys:
        TWINS[key] = like
    declare(new_keys, **{f: getattr(source, f) for f in fields})


def twin_of(key: Key) -> Key:
    """The key ``key`` was aliased to (an ATen op's functional twin), else ``key`` itself."""
    try:
        return TWINS.get(key, key)
    except TypeError:  # an unhashable callable
        return key


# Registrations for an optional package, run once that package has been imported by someone: a model
# built from its layers implies the import, and not importing it ourselves keeps graphprune light. A
# package may have several (graphprune's own, a user's), run in the order they were made.
_PENDING: dict[str, list[Callable[[], None]]] = {}


def register_when_imported(package: str, registration: Callable[[], None]) -> None:
    _PENDING.setdefault(package, []).append(registration)
    _run_pending()


def _run_pending() -> None:
    for package in [p for p in _PENDING if p in sys.modules]:
        for registration in _PENDING.pop(package, []):  # [] if a registration ran it already
            registration()


def _get(key: Key) -> OpSpec | None:
    if _PENDING:
        _run_pending()
    try:
        return SPECS.get(key)
    except TypeError:  # an unhashable callable
        return None


def lookup(key: Key) -> OpSpec | None:
    """The spec holding ``key``'s channel rule: exact match first; a module subclass inherits its base's
    rule only if it keeps the base's forward."""
    spec = _get(key)
    if spec is not None and spec.propagate is not None:
        return spec
    if not isinstance(key, type):
        return None
    for base in key.__mro__[1:]:
        spec = SPECS.get(base)
        if spec is not None and spec.propagate is not None and \
                getattr(key, "forward", None) is getattr(base, "forward", None):
            return spec
    return None


def formula_for(key: Key) -> Callable[..., Any] | None:
    """The shape formula of exactly this key."""
    spec = _get(key)
    return spec.shape if spec is not None else None


def declared(key: Key, field: str) -> Any:
    """``field`` as declared for exactly this key (None when it is not): facts about a forward's input,
    which a subclass may read differently."""
    spec = _get(key)
    return getattr(spec, field) if spec is not None else None


def _mro(obj: Any) -> tuple[Key, ...]:
    if isinstance(obj, nn.Module):
        return type(obj).__mro__
    if isinstance(obj, type):
        return obj.__mro__
    return (obj,)


def traits(obj: Any) -> frozenset[Trait]:
    """The traits of a module (instance or class, with those of its bases) or of a function key."""
    if _PENDING:
        _run_pending()
    out: frozenset[Trait] = frozenset()
    for base in _mro(obj):
        spec = _get(base)
        if spec is not None:
            out |= spec.traits
    return out


def has_trait(obj: Any, trait: Trait) -> bool:
    return trait in traits(obj)


def inherited(obj: Any, field: str) -> Any:
    """The first non-None ``field`` along a module's bases (``resize``, ``input_weight_dim``)."""
    for base in _mro(obj):
        spec = _get(base)
        if spec is not None and getattr(spec, field) is not None:
            return getattr(spec, field)
    return None


def keys_with(trait: Trait) -> list[Key]:
    """Every key declared with ``trait`` itself (not through a base), in declaration order."""
    if _PENDING:
        _run_pending()
    return [k for k, s in SPECS.items() if trait in s.traits]


def node_key(node: fx.Node, root: nn.Module, modules: Mapping[str, nn.Module] | None = None) -> Key:
    """``modules``: optionally ``dict(root.named_modules(remove_duplicate=False))``, to look up
    ``call_module`` targets without walking the path each time."""
    if node.op == "call_function":
        return node.target
    if node.op == "call_method":
        return Method(str(node.target))
    if node.op == "call_module":
        target = str(node.target)
        return type(modules[target] if modules is not None and target in modules else root.get_submodule(target))
    return None


def describe(key: Key) -> str:
    """Human name of an op key for reports: ``torch.roll``, ``Tensor.unfold``, ``nn.LSTM``."""
    if isinstance(key, Method):
        return f"Tensor.{key.name}"
    if isinstance(key, torch._ops.OpOverload):
        return str(key)  # aten.roll.default
    if isinstance(key, type):
        return f"{key.__module__}.{key.__qualname__}"
    module = getattr(key, "__module__", None) or ""
    name = getattr(key, "__qualname__", None) or getattr(key, "__name__", repr(key))
    return f"{module}.{name}" if module else name
