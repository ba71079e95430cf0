"""Shape formulas for standard torch.nn layers called as fx leaves (``call_module``): convolution,
linear, batch/layer/group norm, activations, dropout, pooling, flatten. Keys are exact classes: a
subclass may override ``forward``. Parameters are read from the module as the kernel would read them,
so a mis-sliced weight after channel removal declines here and fails loudly in the fake-tensor run."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from graphprune.shapes.ops import softmax
from graphprune.shapes.registry import Call, Meta, as_tuple, dim_index, formula, module_input, numel, spec


@formula([nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
          nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout])
def elementwise(call: Call) -> Meta | None:
    return module_input(call)


@formula([nn.Dropout2d])
def dropout2d(call: Call) -> Meta | None:
    x = module_input(call)
    return x if x is not None and x.ndim == 4 else None  # other ranks warn: leave that to torch


@formula([nn.Identity])
def identity(call: Call) -> Any:
    return call.args[0] if len(call.args) == 1 and not call.kwargs else None


@formula([nn.Softmax, nn.LogSoftmax])
def softmax_module(call: Call) -> Meta | None:
    x = module_input(call)
    return None if x is None else softmax(Call((call.args[0], call.module.dim), {}))


@formula([nn.Flatten])
def flatten(call: Call) -> Meta | None:
    m, x = call.module, module_input(call, floating=False)
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
    m, x = call.module, module_input(call)
    nd = _POOL_DIMS[type(m)]
    if x is None or x.ndim not in (nd + 1, nd + 2) or getattr(m, "return_indices", False):
        return None
    stride = m.stride if m.stride not in (None, (), []) else m.kernel_size
    k, st, pad = as_tuple(m.kernel_size, nd), as_tuple(stride, nd), as_tuple(m.padding, nd)
    dil = as_tuple(getattr(m, "dilation", 1), nd)
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
    m, x = call.module, module_input(call)
    if x is None or getattr(m, "return_indices", False):
        return None
    return adaptive_shape(x, m.output_size, _ADAPTIVE_DIMS[type(m)])


def adaptive_shape(x: Meta, output_size: Any, nd: int) -> Meta | None:
    sizes = as_tuple(output_size, nd)
    if x.ndim not in (nd + 1, nd + 2) or len(sizes) != nd or 0 in x.shape[-nd - 1:]:
        return None
    out = tuple(s if o is None else o for s, o in zip(x.shape[-nd:], sizes))
    if any(not isinstance(o, int) or o < 0 for o in out):
        return None
    return Meta((*x.shape[:-nd], *out), x.dtype, x.device)
