"""Per-layer facts the liveness analysis needs, read from the current weights (and masks).

A conv / linear is summarised by its connectivity: whether output channel j reads input channel i at
all (some kernel tap non-zero and not masked), plus which output channels have a non-zero bias. A
grouped conv keeps its weight's (out, in / groups) form: each group reads its own block of inputs.
A per-channel norm is summarised by the channels it zeroes whatever its input (weight and bias both
0) and those it maps a zero input to zero
(``bias - running_mean * weight / sqrt(running_var + eps)`` is 0 up to float rounding).

Every tensor is read through a ``Zeroed`` (``graphprune.liveness.zeroed``): the statistics proof reads the
masked dense model of a removal round through it; everything else reads the tensors as they are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from graphprune.eager_args import node_args
from graphprune.liveness.zeroed import NOTHING, Zeroed, nonzero
from graphprune.ops.registry import Liveness, Trait, declared, has_trait, lookup, node_key

ROUNDING = 1e-6  # |norm(0)| below this fraction of its terms' magnitude is float rounding, i.e. zero


@dataclass(frozen=True)
class LinearView:
    x: fx.Node  # the input whose channels are mixed
    in_dim: int  # its channel dim
    out_dim: int  # the result's channel dim
    nz: np.ndarray  # bool (out, in / groups): output j reads input (j // (out / groups)) * (in / groups) + i
    bias: np.ndarray  # bool per output channel: non-zero bias
    groups: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        """(output channels, input channels)."""
        return self.nz.shape[0], self.nz.shape[1] * self.groups

    def rows_reading(self, inputs: np.ndarray) -> np.ndarray:
        """Bool per output channel: it reads one of the flagged input channels."""
        if inputs.all():  # the usual case: no input channel is known zero
            return self.nz.any(-1)
        blocks = self.nz.reshape(self.groups, -1, self.nz.shape[1]) & inputs.reshape(self.groups, 1, -1)
        return blocks.any(-1).reshape(-1)

    def columns_read(self, rows: np.ndarray) -> np.ndarray:
        """Bool per input channel: one of the flagged output channels reads it."""
        blocks = self.nz.reshape(self.groups, -1, self.nz.shape[1]) & rows.reshape(self.groups, -1, 1)
        return blocks.any(1).reshape(-1)


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


def _masked(t: torch.Tensor, fqn: str, masks: dict) -> bool:
    mask = masks.get(fqn)
    return isinstance(mask, torch.Tensor) and mask.shape == t.shape


def _connectivity(w: np.ndarray, groups: int, transposed: bool) -> np.ndarray | None:
    """(out, in / groups) from ``w``, the weight's non-zero entries (bool)."""
    nz = w.reshape(w.shape[0], w.shape[1], -1).any(-1) if w.ndim > 2 else w
    if transposed:
        return np.ascontiguousarray(nz.T) if groups == 1 else None
    return nz if nz.shape[0] % groups == 0 else None


def _module_weight_nonzero(m: nn.Module, fqn: str, masks: dict, zeroed: Zeroed) -> torch.Tensor:
    """The non-zero entries of a conv/linear module's effective weight (state mask, a masked twin's own)."""
    own = getattr(m, "weight_mask", None)
    if not isinstance(own, torch.Tensor) and not _masked(m.weight, fqn, masks):
        return zeroed.nonzero(m.weight)
    w = _effective(zeroed.value(m.weight), fqn, masks)
    return ((w * zeroed.value(own) if isinstance(own, torch.Tensor) else w) != 0).numpy()  # a masked twin: its mask


def linear_view(node: fx.Node, gm: fx.GraphModule, values: dict, masks: dict,
                zeroed: Zeroed = NOTHING) -> LinearView | None:
    """Connectivity of a conv/linear node; None when its weights are not plain tensors we can read."""
    x = node.args[0] if node.args else node.kwargs.get("input")
    info = values.get(x.name) if isinstance(x, fx.Node) else None
    if info is None or not hasattr(info, "ndim"):
        return None
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        w = _module_weight_nonzero(m, f"{node.target}.weight", masks, zeroed)
        bias = getattr(m, "bias", None)
        b = _effective(zeroed.value(bias) if bias is not None else None, f"{node.target}.bias", masks)
        groups, transposed = getattr(m, "groups", 1), has_trait(m, Trait.TRANSPOSED)
    else:
        w = _attr_nonzero(_arg(node, 1, "weight"), gm, masks, zeroed)
        b = _attr_tensor(_arg(node, 2, "bias"), gm, masks, zeroed)
        if w is None or (_arg(node, 2, "bias") is not None and not isinstance(b, torch.Tensor)):
            return None
        transposed = has_trait(node.target, Trait.TRANSPOSED)
        groups = _arg(node, 7 if transposed else 6, "groups") or 1
    spatial = w.ndim - 2 if w.ndim > 2 else None  # a linear's input channels are its last dim
    nz = _connectivity(w, groups, transposed) if isinstance(groups, int) else None
    if nz is None:
        return None
    cdim = info.ndim - 1 if spatial is None else (1 if info.ndim == spatial + 2 else 0)
    bias = (b != 0).numpy() if b is not None else np.zeros(nz.shape[0], dtype=bool)
    return LinearView(x, cdim, cdim, nz, bias, 1 if transposed else groups)


def norm_view(node: fx.Node, gm: fx.GraphModule, values: dict, zeroed: Zeroed = NOTHING) -> NormView | None:
    """A norm module, or ``F.batch_norm`` whose statistics and affine are (movement of) parameters."""
    x = node.args[0] if node.args else node.kwargs["input"]
    info = values[x.name]
    rule = lookup(node_key(node, gm))
    if rule is not None and rule.liveness is Liveness.LAYER_NORM:
        return _layer_norm_view(node, gm, x, info, zeroed)
    if node.op == "call_function":
        args = [_arg(node, i, n) for i, n in enumerate(_BN_ARGS, start=1)]
        stats = [None if a is None else _attr_tensor(a, gm, {}, zeroed) for a in args]
        training, eps = _arg(node, 5, "training") or False, _arg(node, 7, "eps") or 1e-5
        if any(a is not None and not isinstance(t, torch.Tensor) for a, t in zip(args, stats)) or \
                not isinstance(training, bool) or not isinstance(eps, float):
            return None
        mean, var, w, b = stats
        running = mean is not None and not training
        groups, dim = None, 1 if info.ndim >= 2 else 0
    else:
        m = gm.get_submodule(str(node.target))
        w, b, mean, var = (_read(m, a, zeroed) for a in ("weight", "bias", "running_mean", "running_var"))
        eps = getattr(m, "eps", 1e-5)
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


def _layer_norm_view(node: fx.Node, gm: fx.GraphModule, x: fx.Node, info: object, zeroed: Zeroed) -> NormView | None:
    """A layer / RMS norm over the last dim: channel c is ``xhat_c * w_c + b_c``, zero whatever the input
    where both are zero; a zero input channel is not normalised to zero (its statistics are the others')."""
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        k, w, b = len(m.normalized_shape), _read(m, "weight", zeroed), _read(m, "bias", zeroed)
    else:  # F.layer_norm(x, shape, weight, bias, ...) / F.rms_norm(x, shape, weight, eps)
        shape, bias = _arg(node, 1, "normalized_shape"), node.kwargs.get("bias")
        if bias is None and len(node.args) > 3 and isinstance(node.args[3], fx.Node):
            bias = node.args[3]
        k = len(shape) if isinstance(shape, (tuple, list)) else 1
        w, b = (None if a is None else _attr_tensor(a, gm, {}, zeroed) for a in (_arg(node, 2, "weight"), bias))
        if (_arg(node, 2, "weight") is not None and w is None) or (bias is not None and b is None):
            return None
    if k != 1 or w is None:
        return None
    n = info.shape[-1]
    w = w.detach().double()
    b = b.detach().double() if b is not None else torch.zeros(n, dtype=torch.float64)
    return NormView(x, info.ndim - 1, ((w == 0) & (b == 0)).numpy(), np.zeros(n, dtype=bool))


def _read(m: nn.Module, name: str, zeroed: Zeroed) -> torch.Tensor | None:
    t = getattr(m, name, None)
    return zeroed.value(t) if isinstance(t, torch.Tensor) else t


def _get_attr(arg: fx.Node, gm: fx.GraphModule) -> object:
    t = gm
    for part in str(arg.target).split("."):
        t = getattr(t, part)
    return t


def _attr_nonzero(arg: object, gm: fx.GraphModule, masks: dict, zeroed: Zeroed) -> torch.Tensor | None:
    """``_attr_tensor(arg) != 0``; a parameter read directly (no mask) is not copied for it."""
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        t = _get_attr(arg, gm)
        if isinstance(t, torch.Tensor) and not _masked(t, str(arg.target), masks):
            return zeroed.nonzero(t)
    value = _attr_tensor(arg, gm, masks, zeroed)
    return nonzero(value) if isinstance(value, torch.Tensor) else None


def _attr_tensor(arg: object, gm: fx.GraphModule, masks: dict, zeroed: Zeroed = NOTHING) -> object:
    """The value of a parameter, or of pure movement of parameters (``in_proj_weight.chunk(3)[0]``):
    masking a parameter slice masks the same channel's slice of such a value. None otherwise."""
    if not isinstance(arg, fx.Node):
        return None
    if arg.op == "get_attr":
        t = _get_attr(arg, gm)
        return _effective(zeroed.value(t), str(arg.target), masks) if isinstance(t, torch.Tensor) else None
    rule = lookup(node_key(arg, gm)) if arg.op in ("call_function", "call_method") else None
    if rule is None or rule.liveness is not Liveness.MOVEMENT:
        return None
    inputs = {n: _attr_tensor(n, gm, masks, zeroed) for n in arg.all_input_nodes}
    if any(v is None for v in inputs.values()):
        return None
    args, kwargs = node_args(arg, inputs.__getitem__)
    if arg.op == "call_method":
        return getattr(args[0], str(arg.target))(*args[1:], **kwargs)
    return arg.target(*args, **kwargs)


def _arg(node: fx.Node, index: int, name: str) -> object:
    return node.args[index] if index < len(node.args) else node.kwargs.get(name)
