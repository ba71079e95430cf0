"""Shape formulas for standard torch.nn layers called as fx leaves (``call_module``): convolution,
linear, batch/layer/group norm, activations, dropout, pooling, flatten. Keys are exact classes: a
subclass may override ``forward``. Parameters are read from the module as the kernel would read them,
so a mis-sliced weight after channel removal declines here and fails loudly in the fake-tensor run."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from graphprune.shapes.ops import linear_shape, softmax
from graphprune.shapes.registry import Call, Meta, dim_index, formula, numel, spec

_CONV_DIMS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}


def _input(call: Call, floating: bool = True) -> Meta | None:
    """The single positional tensor argument of a module call."""
    if len(call.args) != 1 or call.kwargs:
        return None
    x = spec(call.args[0])
    return x if x is not None and (x.dtype.is_floating_point or not floating) else None


def _matches(tensor: Any, shape: tuple[int, ...], x: Meta) -> bool:
    """An optional parameter is absent, or has exactly ``shape`` and the input's dtype and device."""
    return tensor is None or (tuple(tensor.shape) == shape and tensor.dtype == x.dtype and tensor.device == x.device)


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


@formula(list(_CONV_DIMS))
def conv(call: Call) -> Meta | None:
    """Zero-padded convolution; MACs = output elements x (in/groups x kernel), as torch counts them."""
    m, x = call.module, _input(call)
    nd = _CONV_DIMS[type(m)]
    if x is None or m.padding_mode != "zeros" or x.ndim not in (nd + 1, nd + 2):
        return None
    w = m.weight
    if w.dtype != x.dtype or w.device != x.device or w.ndim != nd + 2 or x.shape[-nd - 1] != w.shape[1] * m.groups:
        return None
    if not _matches(m.bias, (w.shape[0],), x):
        return None
    spatial, kernel = x.shape[-nd:], tuple(w.shape[2:])
    if m.padding == "same":
        out = spatial
    else:
        pad = (0,) * nd if m.padding == "valid" else _tuple(m.padding, nd)
        out = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                    for s, p, d, k, st in zip(spatial, pad, _tuple(m.dilation, nd), kernel, _tuple(m.stride, nd)))
    if any(o <= 0 for o in out):
        return None
    shape = (*x.shape[:-nd - 1], w.shape[0], *out)
    call.macs += numel(shape) * numel(tuple(w.shape[1:]))
    return Meta(shape, x.dtype, x.device)


@formula([nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear])
def linear(call: Call) -> Meta | None:
    x = _input(call)
    m = call.module
    return None if x is None else linear_shape(call, x, spec(m.weight), spec(m.bias), m.bias is not None)


_BN_NDIM = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


@formula(list(_BN_NDIM))
def batch_norm(call: Call) -> Meta | None:
    """Eval-mode batch norm over running statistics: every per-channel tensor has C entries."""
    m, x = call.module, _input(call)
    if x is None or x.ndim not in _BN_NDIM[type(m)] or m.training or m.running_mean is None or m.running_var is None:
        return None
    c = (x.shape[1],)
    ok = all(_matches(t, c, x) for t in (m.weight, m.bias, m.running_mean, m.running_var))
    return x if ok else None


@formula([nn.LayerNorm])
def layer_norm(call: Call) -> Meta | None:
    m, x = call.module, _input(call)
    ns = tuple(m.normalized_shape)
    if x is None or x.ndim < len(ns) or x.shape[x.ndim - len(ns):] != ns:
        return None
    return x if _matches(m.weight, ns, x) and _matches(m.bias, ns, x) else None


@formula([nn.GroupNorm])
def group_norm(call: Call) -> Meta | None:
    m, x = call.module, _input(call)
    if x is None or x.ndim < 2 or x.shape[1] != m.num_channels or x.shape[1] % m.num_groups:
        return None
    c = (x.shape[1],)
    return x if _matches(m.weight, c, x) and _matches(m.bias, c, x) else None


@formula([nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
          nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout])
def elementwise(call: Call) -> Meta | None:
    return _input(call)


@formula([nn.Dropout2d])
def dropout2d(call: Call) -> Meta | None:
    x = _input(call)
    return x if x is not None and x.ndim == 4 else None  # other ranks warn: leave that to torch


@formula([nn.Identity])
def identity(call: Call) -> Any:
    return call.args[0] if len(call.args) == 1 and not call.kwargs else None


@formula([nn.Softmax, nn.LogSoftmax])
def softmax_module(call: Call) -> Meta | None:
    x = _input(call)
    return None if x is None else softmax(Call((call.args[0], call.module.dim), {}))


@formula([nn.Flatten])
def flatten(call: Call) -> Meta | None:
    m, x = call.module, _input(call, floating=False)
    if x is None or x.ndim == 0:
        return None
    start, end = dim_index(m.start_dim, x.ndim), dim_index(m.end_dim, x.ndim)
    if start is None or end is None or start > end:
        return None
    return Meta((*x.shape[:start], numel(x.shape[start:end + 1]), *x.shape[end + 1:]), x.dtype, x.device)


_POOL_DIMS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}


def _pool_size(size: int, k: int, pad: int, stride: int, dilation: int, ceil: bool) -> int:
    """torch's pooling_output_shape: a ceil-mode window must start inside the (left-padded) input."""
    out = (size + 2 * pad - dilation * (k - 1) - 1 + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@formula(list(_POOL_DIMS))
def pool(call: Call) -> Meta | None:
    m, x = call.module, _input(call)
    nd = _POOL_DIMS[type(m)]
    if x is None or x.ndim not in (nd + 1, nd + 2) or getattr(m, "return_indices", False):
        return None
    stride = m.stride if m.stride not in (None, (), []) else m.kernel_size
    k, st, pad = _tuple(m.kernel_size, nd), _tuple(stride, nd), _tuple(m.padding, nd)
    dil = _tuple(getattr(m, "dilation", 1), nd)
    spatial = x.shape[-nd:]
    if min(*k, *st, *dil) <= 0 or 0 in x.shape[-nd - 1:]:
        return None
    if any(2 * p > (d * (kk - 1) + 1) for p, d, kk in zip(pad, dil, k)) or min(pad) < 0:
        return None  # torch: "pad should be at most half of effective kernel size"
    out = tuple(_pool_size(s, kk, p, t, d, m.ceil_mode) for s, kk, p, t, d in zip(spatial, k, pad, st, dil))
    if any(o <= 0 for o in out):
        return None
    return Meta((*x.shape[:-nd], *out), x.dtype, x.device)


_ADAPTIVE_DIMS = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
                  nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3}


@formula([F.adaptive_avg_pool2d])
def adaptive_avg_pool2d(call: Call) -> Meta | None:
    x = spec(call.arg(0, "input"))
    if x is None or not x.dtype.is_floating_point or not call.only("input", "output_size", max_args=2):
        return None
    return adaptive_shape(x, call.arg(1, "output_size"), 2)


@formula(list(_ADAPTIVE_DIMS))
def adaptive_pool(call: Call) -> Meta | None:
    m, x = call.module, _input(call)
    if x is None or getattr(m, "return_indices", False):
        return None
    return adaptive_shape(x, m.output_size, _ADAPTIVE_DIMS[type(m)])


def adaptive_shape(x: Meta, output_size: Any, nd: int) -> Meta | None:
    sizes = _tuple(output_size, nd)
    if x.ndim not in (nd + 1, nd + 2) or len(sizes) != nd or 0 in x.shape[-nd - 1:]:
        return None
    out = tuple(s if o is None else o for s, o in zip(x.shape[-nd:], sizes))
    if any(not isinstance(o, int) or o < 0 for o in out):
        return None
    return Meta((*x.shape[:-nd], *out), x.dtype, x.device)
