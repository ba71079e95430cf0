"""Per-layer facts the liveness analysis needs, read from the current weights (and masks).

A conv / linear is summarised by its connectivity: ``nz[j, i]`` says whether output channel j reads
input channel i at all (some kernel tap non-zero and not masked), plus which output channels have a
non-zero bias. Grouped convs get the block-diagonal matrix. A per-channel norm is summarised by the
channels it zeroes whatever its input (weight and bias both 0) and those it maps a zero input to zero
(``bias - running_mean * weight / sqrt(running_var + eps)`` is 0 up to float rounding)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx

from graphprune.eager_args import node_args
from graphprune.ops.registry import Liveness, Trait, declared, has_trait, lookup, node_key

ROUNDING = 1e-6  # |norm(0)| below this fraction of its terms' magnitude is float rounding, i.e. zero


@dataclass(frozen=True)
class LinearView:
    x: fx.Node  # the input whose channels are mixed
    in_dim: int  # its channel dim
    out_dim: int  # the result's channel dim
    nz: torch.Tensor  # bool (out, in)
    bias: np.ndarray  # bool per output channel: non-zero bias


@dataclass(frozen=True)
class NormView:
    x: fx.Node
    dim: int
    always_zero: np.ndarray  # bool per channel: output 0 whatever the input
    keeps_zero: np.ndarray  # bool per channel: a zero input channel gives a zero output channel


def _effective(t: torch.Tensor | None, fqn: str, masks: dict) -> torch.Tensor | None:
    if t is None:
        return None
    t = t.detach()
    mask = masks.get(fqn)
    return t * mask.to(t.dtype) if isinstance(mask, torch.Tensor) and mask.shape == t.shape else t


def _connectivity(w: torch.Tensor, groups: int, transposed: bool) -> torch.Tensor | None:
    nz = (w != 0).reshape(w.shape[0], w.shape[1], -1).any(-1) if w.ndim > 2 else w != 0
    if transposed:
        return nz.T if groups == 1 else None
    if groups == 1:
        return nz
    out, per_in = nz.shape
    per_out = out // groups
    full = torch.zeros(out, per_in * groups, dtype=torch.bool)
    for g in range(groups):
        full[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = nz[g * per_out:(g + 1) * per_out]
    return full


def linear_view(node: fx.Node, gm: fx.GraphModule, values: dict, masks: dict) -> LinearView | None:
    """Connectivity of a conv/linear node; None when its weights are not plain tensors we can read."""
    x = node.args[0] if node.args else node.kwargs.get("input")
    info = values.get(x.name) if isinstance(x, fx.Node) else None
    if info is None or not hasattr(info, "ndim"):
        return None
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        w = _effective(m.weight, f"{node.target}.weight", masks)
        if isinstance(getattr(m, "weight_mask", None), torch.Tensor):  # a masked twin multiplies by its mask
            w = w * m.weight_mask
        b = _effective(getattr(m, "bias", None), f"{node.target}.bias", masks)
        groups, transposed = getattr(m, "groups", 1), has_trait(m, Trait.TRANSPOSED)
    else:
        w, b = (_attr_tensor(a, gm, masks) for a in (_arg(node, 1, "weight"), _arg(node, 2, "bias")))
        if not isinstance(w, torch.Tensor) or (_arg(node, 2, "bias") is not None and not isinstance(b, torch.Tensor)):
            return None
        transposed = has_trait(node.target, Trait.TRANSPOSED)
        groups = _arg(node, 7 if transposed else 6, "groups") or 1
    spatial = w.ndim - 2 if w.ndim > 2 else None  # a linear's input channels are its last dim
    nz = _connectivity(w, groups, transposed) if isinstance(groups, int) else None
    if nz is None:
        return None
    cdim = info.ndim - 1 if spatial is None else (1 if info.ndim == spatial + 2 else 0)
    bias = (b != 0).numpy() if b is not None else np.zeros(nz.shape[0], dtype=bool)
    return LinearView(x, cdim, cdim, nz, bias)


def norm_view(node: fx.Node, gm: fx.GraphModule, values: dict) -> NormView | None:
    """A norm module, or ``F.batch_norm`` whose statistics and affine are (movement of) parameters."""
    x = node.args[0] if node.args else node.kwargs["input"]
    info = values[x.name]
    rule = lookup(node_key(node, gm))
    if rule is not None and rule.liveness is Liveness.LAYER_NORM:
        return _layer_norm_view(node, gm, x, info)
    if node.op == "call_function":
        args = [_arg(node, i, n) for i, n in enumerate(_BN_ARGS, start=1)]
        stats = [None if a is None else _attr_tensor(a, gm, {}) for a in args]
        training, eps = _arg(node, 5, "training") or False, _arg(node, 7, "eps") or 1e-5
        if any(a is not None and not isinstance(t, torch.Tensor) for a, t in zip(args, stats)) or \
                not isinstance(training, bool) or not isinstance(eps, float):
            return None
        mean, var, w, b = stats
        running = mean is not None and not training
        groups, dim = None, 1 if info.ndim >= 2 else 0
    else:
        m = gm.get_submodule(str(node.target))
        w, b = getattr(m, "weight", None), getattr(m, "bias", None)
        mean, var, eps = getattr(m, "running_mean", None), getattr(m, "running_var", None), getattr(m, "eps", 1e-5)
        instance = has_trait(m, Trait.INSTANCE_STATS)
        running = mean is not None and (not instance or m.track_running_stats)
        groups = m.num_groups if has_trait(m, Trait.GROUP_STATS) else None
        dim = 1 if info.ndim >= 2 and declared(type(m), "unbatched_ndim") != info.ndim else 0
    n = info.shape[dim]
    w = w.detach().double() if w is not None else torch.ones(n, dtype=torch.float64)
    b = b.detach().double() if b is not None else torch.zeros(n, dtype=torch.float64)
    if groups == 1:  # statistics over all channels: a zero channel is not normalised to zero
        at_zero, scale = torch.ones_like(b), torch.zeros_like(b)
    elif groups is not None or not running:  # stats of an all-zero channel (group): (0 - 0) * w + b
        at_zero, scale = b, b.abs()
    else:
        shift = mean.detach().double() * w / torch.sqrt(var.detach().double() + eps)
        at_zero, scale = b - shift, b.abs() + shift.abs()
    keeps = (at_zero.abs() <= ROUNDING * scale).numpy()
    return NormView(x, dim, ((w == 0) & (b == 0)).numpy(), keeps)


_BN_ARGS = ("running_mean", "running_var", "weight", "bias")


def _layer_norm_view(node: fx.Node, gm: fx.GraphModule, x: fx.Node, info: object) -> NormView | None:
    """A layer / RMS norm over the last dim: channel c is ``xhat_c * w_c + b_c``, zero whatever the input
    where both are zero; a zero input channel is not normalised to zero (its statistics are the others')."""
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        k, w, b = len(m.normalized_shape), getattr(m, "weight", None), getattr(m, "bias", None)
    else:  # F.layer_norm(x, shape, weight, bias, ...) / F.rms_norm(x, shape, weight, eps)
        shape, bias = _arg(node, 1, "normalized_shape"), node.kwargs.get("bias")
        if bias is None and len(node.args) > 3 and isinstance(node.args[3], fx.Node):
            bias = node.args[3]
        k = len(shape) if isinstance(shape, (tuple, list)) else 1
        w, b = (None if a is None else _attr_tensor(a, gm, {}) for a in (_arg(node, 2, "weight"), bias))
        if (_arg(node, 2, "weight") is not None and w is None) or (bias is not None and b is None):
            return None
    if k != 1 or w is None:
        return None
    n = info.shape[-1]
    w = w.detach().double()
    b = b.detach().double() if b is not None else torch.zeros(n, dtype=torch.float64)
    return NormView(x, info.ndim - 1, ((w == 0) & (b == 0)).numpy(), np.zeros(n, dtype=bool))


def _attr_tensor(arg: object, gm: fx.GraphModule, masks: dict) -> object:
    """The value of a parameter, or of pure movement of parameters (``in_proj_weight.chunk(3)[0]``):
    masking a parameter slice masks the same channel's slice of such a value. None otherwise."""
    if not isinstance(arg, fx.Node):
        return None
    if arg.op == "get_attr":
        t = gm
        for part in str(arg.target).split("."):
            t = getattr(t, part)
        return _effective(t, str(arg.target), masks) if isinstance(t, torch.Tensor) else None
    rule = lookup(node_key(arg, gm)) if arg.op in ("call_function", "call_method") else None
    if rule is None or rule.liveness is not Liveness.MOVEMENT:
        return None
    inputs = {n: _attr_tensor(n, gm, masks) for n in arg.all_input_nodes}
    if any(v is None for v in inputs.values()):
        return None
    args, kwargs = node_args(arg, inputs.__getitem__)
    if arg.op == "call_method":
        return getattr(args[0], str(arg.target))(*args[1:], **kwargs)
    return arg.target(*args, **kwargs)


def _arg(node: fx.Node, index: int, name: str) -> object:
    return node.args[index] if index < len(node.args) else node.kwargs.get(name)
