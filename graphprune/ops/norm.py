"""Normalisation layers.

BatchNorm and InstanceNorm act per channel: their parameters and running statistics simply join the
channel. GroupNorm with several groups is pruned by whole norm groups (each group is normalised on
its own, so removing a whole group is exact and only ``num_groups`` shrinks). LayerNorm, RMSNorm and
GroupNorm(1, C) compute statistics *across* channels: pruning them is allowed but changes the
surviving channels' statistics, so those channels are marked inexact. LayerNorm and RMSNorm declare
``statistics``, the rewrite that keeps them over the original width (``graphprune.ops.full_width``):
with ``statistics = "exact"`` a removal through them whose removed channels are zero at their input is
exact, and is not reported (``graphprune.statistics``).
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops import full_width
from graphprune.ops.elementwise import same_layout
from graphprune.ops.registry import Liveness, Trait, declare, declared, formula, register, resizer
from graphprune.shapes.registry import Call, Meta, floating, ints, matches, module_input, spec

# Traits: what consumers (purify, fuse, scoring, training modes, ADMM, liveness) need to know.
declare([nn.modules.batchnorm._BatchNorm, nn.GroupNorm], traits={Trait.PER_CHANNEL_NORM})  # purify zeroes them
declare([nn.modules.batchnorm._BatchNorm], traits={Trait.RUNNING_STATS, Trait.FOLDABLE_INTO_CONV})
declare([F.batch_norm], traits={Trait.FOLDABLE_INTO_CONV})
declare([nn.GroupNorm], traits={Trait.GROUP_STATS})
declare([nn.modules.instancenorm._InstanceNorm], traits={Trait.INSTANCE_STATS})
# An instance norm also reads an unbatched sample, with its channels in dim 0.
for _cls, _ndim in ((nn.InstanceNorm1d, 2), (nn.InstanceNorm2d, 3), (nn.InstanceNorm3d, 4)):
    declare([_cls], unbatched_ndim=_ndim)

_PER_CHANNEL_BUFFERS = ("weight", "bias", "running_mean", "running_var")


def _bind(ctx: RuleContext, ids: Ids | None, param: Ids | None) -> None:
    """A per-channel parameter joins its channel; without tracked channels it is left alone."""
    if ids is not None and param is not None and len(ids) == len(param):
        ctx.table.unify(ids, param)


BATCH_NORMS = [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
               nn.InstanceNorm2d, nn.InstanceNorm3d]


@register(BATCH_NORMS, liveness=Liveness.NORM_MODULE)
def batch_norm_module(ctx: RuleContext) -> Layout:
    lay = same_layout(ctx, ctx.arg(0, "input"))
    info = ctx.info(ctx.arg(0, "input"))
    cdim = 1 if info is not None and info.ndim >= 2 and not _unbatched_instance_norm(ctx) else 0
    for attr in _PER_CHANNEL_BUFFERS:
        _bind(ctx, lay.get(cdim), ctx.bind_param(attr, 0, lay.get(cdim)))
    return lay


def _unbatched_instance_norm(ctx: RuleContext) -> bool:
    expected = declared(type(ctx.module), "unbatched_ndim")
    info = ctx.info(ctx.arg(0))
    return expected is not None and info is not None and info.ndim == expected


def _functional_param(ctx: RuleContext, index: int, name: str) -> Ids | None:
    arg = ctx.arg(index, name)
    lay = ctx.layout(arg) if arg is not None else None
    return lay.get(0) if isinstance(lay, Layout) else None


@register([F.batch_norm, F.instance_norm], liveness=Liveness.NORM_FUNCTIONAL)
def batch_norm_functional(ctx: RuleContext) -> Layout:
    lay = same_layout(ctx, ctx.arg(0, "input"))
    for name, index in (("running_mean", 1), ("running_var", 2), ("weight", 3), ("bias", 4)):
        _bind(ctx, lay.get(1), _functional_param(ctx, index, name))
    uses_batch_stats = ctx.node.target is F.instance_norm or ctx.arg(1, "running_mean") is None or bool(
        ctx.value(ctx.arg(5, "training" if ctx.node.target is F.batch_norm else "use_input_stats", False)))
    if uses_batch_stats:
        _statistics_over_channels(ctx, lay, keep_batch=ctx.node.target is F.instance_norm)
    return lay


def _statistics_over_channels(ctx: RuleContext, lay: Layout, keep_batch: bool) -> None:
    """Batch statistics average every dim but 1 (and 0 for instance norm): channels carried there are cut
    through a statistic (weight standardisation), as through a LayerNorm."""
    for d, ids in lay.dims.items():
        if d != 1 and not (keep_batch and d == 0):
            ctx.table.mark_inexact(ids, "normalisation statistics over channels (weight standardisation)", ctx.name)


# torch.export's ATen batch norm: (input, weight, bias, running_mean, running_var, training, momentum, eps,
# cudnn_enabled), F.batch_norm's arguments in another order. Its zero behaviour is not modelled
# (``liveness.layers.norm_view`` reads F.batch_norm's positions), so it is never known to output zero.
@register([torch.ops.aten.batch_norm.default], liveness=Liveness.OPAQUE_PER_CHANNEL)
def batch_norm_aten(ctx: RuleContext) -> Layout:
    lay = same_layout(ctx, ctx.arg(0, "input"))
    for name, index in (("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)):
        _bind(ctx, lay.get(1), _functional_param(ctx, index, name))
    if ctx.arg(3, "running_mean") is None or bool(ctx.value(ctx.arg(5, "training", False))):
        _statistics_over_channels(ctx, lay, keep_batch=False)
    return lay


# The zero analysis (``graphprune.liveness.layers.norm_view``) models the torch norm modules' forward
# and F.batch_norm; SyncBatchNorm has a forward of its own and F.instance_norm's arguments are not read,
# so both act per channel but are never known to output zero.
declare([nn.SyncBatchNorm, F.instance_norm], liveness=Liveness.OPAQUE_PER_CHANNEL)


def _group_norm(ctx: RuleContext, num_groups: int, weight: Ids | None, bias: Ids | None) -> Layout:
    lay = same_layout(ctx, ctx.arg(0, "input"))
    ids = lay.get(1)
    _bind(ctx, ids, weight)
    _bind(ctx, ids, bias)
    if ids is None:
        return lay
    if num_groups == 1:
        ctx.table.mark_inexact(ids, "GroupNorm(1, C) statistics span all channels", ctx.name)
        return lay
    units = ids.reshape(num_groups, -1)
    for k in range(1, units.shape[1]):
        ctx.table.unify(units[:, 0], units[:, k])
    return lay


@register([nn.GroupNorm], liveness=Liveness.NORM_MODULE)
def group_norm_module(ctx: RuleContext) -> Layout:
    return _group_norm(ctx, ctx.module.num_groups, ctx.param("weight", 0), ctx.param("bias", 0))


def _rewrite_num_groups(node, kept) -> None:
    """F.group_norm(x, num_groups, ...) bakes the group count (timm's GroupNormAct, traced through):
    whole groups are removed, so the group size stays and the count follows the kept channels."""
    in_kwargs = len(node.args) < 2
    groups = node.kwargs.get("num_groups") if in_kwargs else node.args[1]
    if not isinstance(groups, int) or groups <= 1:
        return
    old, new = kept.old_shape(node.args[0])[1], kept.new_shape(node.args[0])[1]
    new_groups = new // (old // groups)
    if new_groups == groups:
        return
    if in_kwargs:
        node.kwargs = {**node.kwargs, "num_groups": new_groups}
    else:
        node.args = (node.args[0], new_groups, *node.args[2:])


@register([F.group_norm], rewrite=_rewrite_num_groups)
def group_norm_functional(ctx: RuleContext) -> Layout:
    return _group_norm(ctx, int(ctx.value(ctx.arg(1, "num_groups"))), _functional_param(ctx, 2, "weight"),
                       _functional_param(ctx, 3, "bias"))


def _layer_norm(ctx: RuleContext, k: int, params: list[object]) -> Layout:
    """Normalised over the last k dims: parameters join those dims' channels; statistics mix them."""
    lay = same_layout(ctx, ctx.arg(0, "input"))
    rank = ctx.out.ndim
    for j in range(k):
        ids = lay.get(rank - k + j)
        if ids is None:
            continue
        ctx.table.mark_inexact(ids, "LayerNorm/RMSNorm statistics span the channels", ctx.name)
        for p in params:
            p_lay = p if isinstance(p, Layout) else EMPTY
            _bind(ctx, ids, p_lay.get(j))
    return lay


def _module_param_layout(ctx: RuleContext, attr: str, ndim: int) -> Layout:
    return Layout({j: ids for j in range(ndim) if (ids := ctx.param(attr, j)) is not None})


@register([nn.LayerNorm, nn.RMSNorm], liveness=Liveness.LAYER_NORM)
def layer_norm_module(ctx: RuleContext) -> Layout:
    m = ctx.module
    k = len(m.normalized_shape)
    params = [_module_param_layout(ctx, a, k) for a in ("weight", "bias") if getattr(m, a, None) is not None]
    return _layer_norm(ctx, k, params)


def _rewrite_normalized_shape(node, kept) -> None:
    """F.layer_norm(x, normalized_shape, ...) bakes the channel count: re-derive it."""
    shape = kept.new_shape(node.args[0])
    k = len(node.args[1])
    node.args = (node.args[0], tuple(shape[-k:]), *node.args[2:])


FULL_WIDTH_NORMS = [full_width.layer_norm, full_width.rms_norm]


@register([F.layer_norm, F.rms_norm, *FULL_WIDTH_NORMS], rewrite=_rewrite_normalized_shape,
          liveness=Liveness.LAYER_NORM)
def layer_norm_functional(ctx: RuleContext) -> Layout:
    k = len(ctx.value(ctx.arg(1, "normalized_shape")))
    params = [ctx.layout(ctx.arg(i, n)) for i, n in ((2, "weight"), (3, "bias")) if ctx.arg(i, n) is not None]
    return _layer_norm(ctx, k, [p for p in params if isinstance(p, Layout)])


# ---- statistics over the original width (``statistics = "exact"``; ``graphprune.statistics`` runs these)
declare([nn.LayerNorm], statistics=full_width.module_call(full_width.layer_norm, ("weight", "bias")))
declare([nn.RMSNorm], statistics=full_width.module_call(full_width.rms_norm, ("weight",)),
        fold_full_width=full_width.fold_rms)
declare([F.layer_norm], statistics=full_width.functional_call(full_width.layer_norm, 5))
declare([F.rms_norm], statistics=full_width.functional_call(full_width.rms_norm, 4))
declare(FULL_WIDTH_NORMS, statistics=full_width.already_full_width)


@register([nn.LocalResponseNorm, F.local_response_norm])
def local_response_norm(ctx: RuleContext) -> Layout:
    ctx.freeze_inputs("LocalResponseNorm mixes neighbouring channels")
    return same_layout(ctx, ctx.arg(0, "input"))



# ---- shapes (``graphprune.shapes.registry``)

_BN_NDIM = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


@formula(list(_BN_NDIM))
def batch_norm_shape(call: Call) -> Meta | None:
    """Eval-mode batch norm over running statistics: every per-channel tensor has C entries."""
    m, x = call.module, module_input(call)
    if x is None or x.ndim not in _BN_NDIM[type(m)] or m.training or m.running_mean is None or m.running_var is None:
        return None
    c = (x.shape[1],)
    ok = all(matches(t, c, x) for t in (m.weight, m.bias, m.running_mean, m.running_var))
    return x if ok else None


@formula([nn.LayerNorm, nn.RMSNorm])
def layer_norm_shape(call: Call) -> Meta | None:
    """Normalised over the trailing ``normalized_shape`` dims, affine of that shape (RMSNorm: no bias)."""
    m, x = call.module, module_input(call)
    ns = tuple(m.normalized_shape)
    if x is None or x.ndim < len(ns) or x.shape[x.ndim - len(ns):] != ns:
        return None
    return x if matches(m.weight, ns, x) and matches(getattr(m, "bias", None), ns, x) else None


@formula([nn.GroupNorm])
def group_norm_shape(call: Call) -> Meta | None:
    m, x = call.module, module_input(call)
    if x is None or x.ndim < 2 or x.shape[1] != m.num_channels or x.shape[1] % m.num_groups:
        return None
    c = (x.shape[1],)
    return x if matches(m.weight, c, x) and matches(m.bias, c, x) else None


@formula([F.layer_norm, full_width.layer_norm])  # the kernel: same shape, kept over ``full`` elements
def layer_norm_functional_shape(call: Call) -> Meta | None:
    x, ns = floating(call.arg(0, "input")), call.arg(1, "normalized_shape")
    if x is None or not call.only("input", "normalized_shape", "weight", "bias", "eps", "full", max_args=5):
        return None
    ns = (ns,) if isinstance(ns, int) else ns
    ns = ints((ns,)) if isinstance(ns, (tuple, list, torch.Size)) else None
    if ns is None or x.ndim < len(ns) or x.shape[x.ndim - len(ns):] != ns:
        return None
    for index, name in ((2, "weight"), (3, "bias")):
        t = call.arg(index, name)
        if t is not None and (spec(t) is None or spec(t).shape != ns or spec(t).dtype != x.dtype):
            return None
    return x


# ---- path copies (SynFlow, PX): a norm as a fixed per-channel scale ``s`` (``graphprune.scoring.copies``)


@torch.no_grad()
def _trailing_scale(m: nn.LayerNorm | nn.RMSNorm) -> tuple[torch.Tensor, None]:
    """Statistics depend on the input: only the affine scale is kept, over the normalised trailing dims."""
    ones = torch.ones(m.normalized_shape)
    return (m.weight.detach().clone() if m.weight is not None else ones), None


def _channel_scale(size: int, m: nn.Module, running_var: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """``gamma / sqrt(running_var + eps)`` per channel (dim 1); without running statistics, ``gamma``."""
    s = torch.ones(size)
    if running_var is not None:
        s = 1.0 / torch.sqrt(running_var.detach().double() + m.eps)
    if getattr(m, "weight", None) is not None:
        s = s * m.weight.detach().double()
    return s.double(), 1


@torch.no_grad()
def _batch_norm_scale(m: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, int]:
    return _channel_scale(m.num_features, m, m.running_var)


@torch.no_grad()
def _instance_norm_scale(m: nn.modules.instancenorm._InstanceNorm) -> tuple[torch.Tensor, int]:
    return _channel_scale(m.num_features, m, None)


@torch.no_grad()
def _group_norm_scale(m: nn.GroupNorm) -> tuple[torch.Tensor, int]:
    return _channel_scale(m.num_channels, m, None)


declare([nn.modules.batchnorm._BatchNorm], fixed_scale=_batch_norm_scale)
declare([nn.modules.instancenorm._InstanceNorm], fixed_scale=_instance_norm_scale)
declare([nn.GroupNorm], fixed_scale=_group_norm_scale)
declare([nn.LayerNorm, nn.RMSNorm], fixed_scale=_trailing_scale)


# ---- resize: size attributes follow the shrunk parameters


@resizer([nn.modules.batchnorm._NormBase])
def _resize_batch_norm(m: nn.modules.batchnorm._NormBase, new_in: int | None) -> None:
    ref = m.weight if m.weight is not None else m.running_mean
    if ref is not None:
        m.num_features = ref.shape[0]
    elif new_in is not None:
        m.num_features = new_in


@resizer([nn.GroupNorm])
def _resize_group_norm(m: nn.GroupNorm, new_in: int | None) -> None:
    per_group = m.num_channels // m.num_groups
    new = m.weight.shape[0] if m.weight is not None else new_in
    if new is not None:
        m.num_groups = new // per_group if m.num_groups > 1 else 1
        m.num_channels = new


@resizer([nn.LayerNorm, nn.RMSNorm])
def _resize_layer_norm(m: nn.LayerNorm, new_in: int | None) -> None:
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)


# ---- ATen ops of a torch.export capture (``graphprune.ops.aten`` reads these two tables)

ATEN_TWINS = {torch.ops.aten.layer_norm.default: F.layer_norm, torch.ops.aten.group_norm.default: F.group_norm,
              torch.ops.aten.rms_norm.default: F.rms_norm}  # the same arguments: the same declaration


def _lower_instance_norm(graph: fx.Graph, node: fx.Node) -> fx.Node:
    """``aten.instance_norm(x, weight, bias, mean, var, use_input_stats, momentum, eps, cudnn)`` is
    ``F.instance_norm(x, mean, var, weight, bias, use_input_stats, momentum, eps)``."""
    x, weight, bias, mean, var, use_input_stats, momentum, eps = (list(node.args) + [None] * 9)[:8]
    return graph.call_function(F.instance_norm, (x, mean, var, weight, bias, use_input_stats, momentum, eps))


ATEN_LOWERINGS = {torch.ops.aten.instance_norm.default: _lower_instance_norm}
