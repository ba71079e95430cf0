"""Shape formulas for functions and tensor methods: element-wise ops, reductions, concatenation,
views and shape queries, matmul and linear. Each declines (returns None) on anything it does not
model exactly; see ``registry`` for the contract."""

from __future__ import annotations

import builtins
import operator
from typing import Any

import torch
import torch.nn.functional as F

from graphprune.shapes.registry import (
    Call,
    Meta,
    broadcast,
    dim_index,
    formula,
    ints,
    is_tensor,
    method_keys,
    numel,
    spec,
)


def _float(x: Any) -> Meta | None:
    m = spec(x)
    return m if m is not None and m.dtype.is_floating_point else None


def _no_tensor(values: Any) -> bool:
    return not any(is_tensor(v) for v in values)


# x -> x: activations, dropout, copies. Extra arguments are scalars/flags (slope, inplace, approximate).
@formula([torch.relu, F.relu, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.gelu, F.silu, F.hardswish,
          F.hardsigmoid, F.relu6, F.leaky_relu, F.elu, F.mish, torch.exp, torch.neg, operator.neg,
          *method_keys("relu", "sigmoid", "tanh", "contiguous", "clone", "exp", "neg")])
def unary(call: Call) -> Meta | None:
    x = _float(call.args[0]) if call.args else None
    if x is None or not _no_tensor((*call.args[1:], *call.kwargs.values())) or "out" in call.kwargs:
        return None
    return x


@formula([F.dropout])
def dropout(call: Call) -> Meta | None:
    p = call.arg(1, "p", 0.5)
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        return None
    return unary(call)


@formula([torch.softmax, F.softmax, torch.log_softmax, F.log_softmax, *method_keys("softmax", "log_softmax")])
def softmax(call: Call) -> Meta | None:
    x = _float(call.args[0]) if call.args else None
    dim = call.arg(1, "dim")
    if x is None or call.arg(3, "dtype") is not None or "dtype" in call.kwargs or len(call.args) > 3:
        return None
    if dim is not None and dim_index(dim, x.ndim) is None:
        return None
    return x


# a op b with broadcasting: operands of one floating dtype and device, scalars int/float.
@formula([operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div,
          *method_keys("add", "sub", "mul", "div")])
def binary(call: Call) -> Meta | None:
    if len(call.args) != 2 or any(k != "alpha" for k in call.kwargs):
        return None
    metas = [spec(a) for a in call.args if is_tensor(a)]
    scalars = [a for a in call.args if not is_tensor(a)]
    if not metas or any(type(s) not in (int, float) for s in scalars):
        return None
    first = metas[0]
    if not first.dtype.is_floating_point or any(m.dtype != first.dtype or m.device != first.device for m in metas):
        return None
    shape = broadcast(*(m.shape for m in metas))
    return None if shape is None else Meta(shape, first.dtype, first.device)


@formula([torch.mean, torch.sum, *method_keys("mean", "sum")])
def reduce(call: Call) -> Meta | None:
    x = _float(call.args[0]) if call.args else None
    if x is None or not call.only("dim", "keepdim", max_args=3):
        return None
    dim, keepdim = call.arg(1, "dim"), call.arg(2, "keepdim", False)
    if not isinstance(keepdim, bool):
        return None
    if dim is None:
        dims = set(range(x.ndim))
    else:
        listed = dim if isinstance(dim, (tuple, list)) else (dim,)
        wrapped = [dim_index(d, x.ndim) for d in listed]
        if not listed or None in wrapped or len(set(wrapped)) != len(wrapped):
            return None
        dims = set(wrapped)
    shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims)
    return Meta(shape, x.dtype, x.device)


@formula([torch.cat, torch.concat])
def cat(call: Call) -> Meta | None:
    tensors, dim = call.arg(0, "tensors"), call.arg(1, "dim", 0)
    if not isinstance(tensors, (tuple, list)) or not tensors or not call.only("tensors", "dim", max_args=2):
        return None
    metas = [spec(t) for t in tensors]
    if None in metas:
        return None
    first = metas[0]
    d = dim_index(dim, first.ndim)
    if d is None or first.ndim == 0 or any(m.dtype != first.dtype or m.device != first.device
                                           or m.ndim != first.ndim for m in metas):
        return None
    if any(m.shape[:d] != first.shape[:d] or m.shape[d + 1:] != first.shape[d + 1:] for m in metas):
        return None
    size = sum(m.shape[d] for m in metas)
    return Meta((*first.shape[:d], size, *first.shape[d + 1:]), first.dtype, first.device)


@formula([torch.flatten, *method_keys("flatten")])
def flatten(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or not call.only("start_dim", "end_dim", max_args=3):
        return None
    if x.ndim == 0:
        return Meta((1,), x.dtype, x.device)
    start, end = dim_index(call.arg(1, "start_dim", 0), x.ndim), dim_index(call.arg(2, "end_dim", -1), x.ndim)
    if start is None or end is None or start > end:
        return None
    return Meta((*x.shape[:start], numel(x.shape[start:end + 1]), *x.shape[end + 1:]), x.dtype, x.device)


def _view_shape(x: Meta, sizes: tuple[int, ...] | None) -> Meta | None:
    if sizes is None or sum(1 for s in sizes if s == -1) > 1 or any(s < -1 for s in sizes):
        return None
    known = numel(tuple(s for s in sizes if s != -1))
    total = numel(x.shape)
    if -1 in sizes:
        if known == 0 or total % known:
            return None
        sizes = tuple(total // known if s == -1 else s for s in sizes)
    return Meta(sizes, x.dtype, x.device) if numel(sizes) == total else None


@formula(method_keys("view", "reshape"))
def view(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or call.kwargs or len(call.args) < 2:
        return None
    return _view_shape(x, ints(call.args[1:]))


@formula([torch.reshape])
def reshape(call: Call) -> Meta | None:
    x = spec(call.arg(0, "input"))
    shape = call.arg(1, "shape")
    if x is None or not isinstance(shape, (tuple, list, torch.Size)) or not call.only("input", "shape", max_args=2):
        return None
    return _view_shape(x, ints((shape,)))


@formula([torch.permute, *method_keys("permute")])
def permute(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or call.kwargs:
        return None
    dims = ints(call.args[1:])
    wrapped = [dim_index(d, x.ndim) for d in dims] if dims is not None and len(dims) == x.ndim else None
    if wrapped is None or sorted(wrapped) != list(range(x.ndim)) or None in wrapped:
        return None
    return Meta(tuple(x.shape[d] for d in wrapped), x.dtype, x.device)


@formula([torch.transpose, *method_keys("transpose")])
def transpose(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or call.kwargs or len(call.args) != 3:
        return None
    a, b = dim_index(call.args[1], x.ndim), dim_index(call.args[2], x.ndim)
    if a is None or b is None:
        return None
    shape = list(x.shape) or []
    if x.ndim:
        shape[a], shape[b] = shape[b], shape[a]
    return Meta(tuple(shape), x.dtype, x.device)


@formula([torch.unsqueeze, *method_keys("unsqueeze")])
def unsqueeze(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    dim = call.arg(1, "dim")
    if x is None or not call.only("dim", max_args=2):
        return None
    d = dim_index(dim, x.ndim + 1)
    return None if d is None else Meta((*x.shape[:d], 1, *x.shape[d:]), x.dtype, x.device)


@formula(method_keys("expand"))
def expand(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    sizes = ints(call.args[1:]) if x is not None and not call.kwargs else None
    if sizes is None or len(sizes) < x.ndim:
        return None
    lead = len(sizes) - x.ndim
    if any(s < 0 for s in sizes[:lead]):
        return None
    out = list(sizes[:lead])
    for want, have in zip(sizes[lead:], x.shape):
        if want == -1 or want == have:
            out.append(have)
        elif have == 1 and want >= 0:
            out.append(want)
        else:
            return None
    return Meta(tuple(out), x.dtype, x.device)


def _pieces(x: Meta, d: int, sizes: list[int]) -> tuple[Meta, ...]:
    return tuple(Meta((*x.shape[:d], s, *x.shape[d + 1:]), x.dtype, x.device) for s in sizes)


@formula([torch.chunk, *method_keys("chunk")])
def chunk(call: Call) -> tuple[Meta, ...] | None:
    x = spec(call.args[0]) if call.args else None
    chunks = call.arg(1, "chunks")
    if x is None or not call.only("chunks", "dim", max_args=3) or not isinstance(chunks, int) or chunks <= 0:
        return None
    d = dim_index(call.arg(2, "dim", 0), x.ndim)
    if d is None or x.ndim == 0 or x.shape[d] == 0:
        return None
    n = x.shape[d]
    step = -(-n // chunks)
    return _pieces(x, d, [min(step, n - i) for i in range(0, n, step)])


@formula([torch.split, *method_keys("split")])
def split(call: Call) -> tuple[Meta, ...] | None:
    x = spec(call.args[0]) if call.args else None
    size = call.arg(1, "split_size_or_sections", call.kwargs.get("split_size"))
    if x is None or not call.only("split_size_or_sections", "split_size", "dim", max_args=3):
        return None
    d = dim_index(call.arg(2, "dim", 0), x.ndim)
    if d is None or x.ndim == 0 or x.shape[d] == 0:
        return None
    n = x.shape[d]
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return _pieces(x, d, [min(size, n - i) for i in range(0, n, size)])
    sections = ints((size,)) if isinstance(size, (tuple, list)) else None
    if sections is None or sum(sections) != n or any(s < 0 for s in sections):
        return None
    return _pieces(x, d, list(sections))


@formula(method_keys("size"))
def size(call: Call) -> Any:
    x = spec(call.args[0]) if call.args else None
    if x is None or not call.only("dim", max_args=2):
        return None
    dim = call.arg(1, "dim")
    if dim is None:
        return torch.Size(x.shape)
    d = dim_index(dim, x.ndim)
    return None if d is None or x.ndim == 0 else x.shape[d]


@formula(method_keys("dim"))
def ndim(call: Call) -> int | None:
    x = spec(call.args[0]) if call.args and len(call.args) == 1 and not call.kwargs else None
    return None if x is None else x.ndim


@formula([builtins.getattr])
def attribute(call: Call) -> Any:
    x = spec(call.args[0]) if len(call.args) == 2 and not call.kwargs else None
    name = call.args[1] if x is not None else None
    if name == "shape":
        return torch.Size(x.shape)
    if name == "ndim":
        return x.ndim
    if name == "dtype":
        return x.dtype
    return None


def _index_shape(x: Meta, index: Any) -> tuple[int, ...] | None:
    """Result shape of basic indexing (ints, slices, None, one Ellipsis), or None."""
    items = index if isinstance(index, tuple) else (index,)
    if any(not (type(i) is int or isinstance(i, slice) or i is None or i is Ellipsis) for i in items):
        return None
    if sum(1 for i in items if i is Ellipsis) > 1:
        return None
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if consumed > x.ndim:
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = (*items[:at], *([slice(None)] * (x.ndim - consumed)), *items[at + 1:])
    out, dim = [], 0
    for item in items:
        if item is None:
            out.append(1)
            continue
        size = x.shape[dim]
        dim += 1
        if isinstance(item, slice):
            if not all(v is None or type(v) is int for v in (item.start, item.stop, item.step)):
                return None
            if item.step is not None and item.step <= 0:
                return None
            out.append(len(range(*item.indices(size))))
        elif not -size <= item < size:
            return None
    return (*out, *x.shape[dim:])


@formula([operator.getitem])
def getitem(call: Call) -> Any:
    if len(call.args) != 2 or call.kwargs:
        return None
    obj, index = call.args
    if isinstance(obj, (tuple, list)) and (type(index) is int or isinstance(index, slice)):
        try:
            return obj[index]
        except IndexError:
            return None
    x = spec(obj)
    shape = None if x is None else _index_shape(x, index)
    return None if shape is None else Meta(shape, x.dtype, x.device)


@formula([torch.matmul, operator.matmul, *method_keys("matmul")])
def matmul(call: Call) -> Meta | None:
    """Batched matrix products of operands with >= 2 dims (1-d operands decline); MACs as torch counts
    the mm/bmm it lowers to."""
    if len(call.args) != 2 or call.kwargs:
        return None
    a, b = _float(call.args[0]), _float(call.args[1])
    if a is None or b is None or a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or a.device != b.device:
        return None
    batch = broadcast(a.shape[:-2], b.shape[:-2])
    if batch is None or a.shape[-1] != b.shape[-2]:
        return None
    out = (*batch, a.shape[-2], b.shape[-1])
    call.macs += numel(out) * a.shape[-1]
    return Meta(out, a.dtype, a.device)


@formula([torch.bmm, *method_keys("bmm")])
def bmm(call: Call) -> Meta | None:
    a, b = (spec(v) for v in call.args) if len(call.args) == 2 and not call.kwargs else (None, None)
    if a is None or b is None or a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        return None
    return matmul(call)


@formula([F.scaled_dot_product_attention])
def attention(call: Call) -> Meta | None:
    """softmax(q k^T) v over batched heads; MACs = batch x L x S x (E + Ev), as torch counts them."""
    q, k, v = (_float(call.arg(i, n)) for i, n in enumerate(("query", "key", "value")))
    if q is None or k is None or v is None or not call.only(
            "query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", max_args=6):
        return None
    if q.ndim < 3 or not q.ndim == k.ndim == v.ndim or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        return None
    if len({q.dtype, k.dtype, v.dtype}) > 1 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        return None
    mask = call.arg(3, "attn_mask")
    if mask is not None:
        m = spec(mask)
        if m is None or m.dtype not in (torch.bool, q.dtype) or \
                broadcast(m.shape, (*q.shape[:-1], k.shape[-2])) != (*q.shape[:-1], k.shape[-2]):
            return None
    out = (*q.shape[:-1], v.shape[-1])
    call.macs += numel(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return Meta(out, q.dtype, q.device)
