"""Statistics over a width that removal shrank: the kernels ``statistics = "exact"`` leaves in the graph.

Removal is exact when the pruned model computes the dense model with the removed channels zeroed. A
LayerNorm, an RMSNorm or a variance over channels reads the removed channels too, as zeros: its mean is
``sum(kept) / C0``, not ``sum(kept) / C``. Each kernel here computes the statistic of its input padded
with zeros back to the original element count, from the kept channels alone, in plain tensor ops
(means, ``torch.var_mean`` and element-wise arithmetic), so ``torch.export`` and ONNX see ordinary ops and the
``.py`` writer copies a kernel's source into the file it writes (``graphprune.export_py``): a kernel
uses nothing but ``torch``. Below them, the graph rewrites that put a kernel in place of a dense op,
as factories the op families declare as their ops' ``statistics`` (``graphprune.ops.norm``,
``graphprune.ops.reduction``), next to the kernels' own declarations (channel rule, liveness).

With ``r = C / C0`` (kept over original element count) and ``m``, ``v`` the kept channels' mean and
biased variance: ``mean0 = r m``, ``E0[x^2] = r (v + m^2)``, ``var0 = r v + r (1 - r) m^2`` (a sum of two
non-negative terms: no cancellation), ``rms0^2 = r mean(x^2)``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx as fx

STANDALONE = "__graphprune_standalone__"  # a kernel the .py writer may copy into its output


def _standalone(fn):  # noqa: ANN001, ANN202
    setattr(fn, STANDALONE, True)
    return fn


@_standalone
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, *, full):  # noqa: A002, ANN001, ANN201
    """``F.layer_norm`` of ``input`` zero-padded to ``full`` elements over the normalised dims."""
    dims = tuple(range(-len(normalized_shape), 0))
    kept = 1
    for size in normalized_shape:
        kept *= size
    r = kept / full
    # contiguous first, as F.layer_norm's kernel makes it: element-wise ops keep a permuted input's strides,
    # and a linear after a non-contiguous LayerNorm output copies it and runs mm + add instead of addmm
    # (convnext's NHWC blocks: one such linear cost 5.5 ms of a 160 ms forward at batch 4)
    input = input.contiguous()  # noqa: A001
    # two mean() calls, not torch.var_mean: on CPU var_mean's kernel was 7-11 % of a pruned vit_b_16's
    # batch-1 time, the two reductions a fraction of that (docs/latency.md)
    mean = input.mean(dims, keepdim=True)
    centred = input - mean
    var = (centred * centred).mean(dims, keepdim=True)
    y = (input - mean * r) * torch.rsqrt(var * r + mean * mean * (r * (1.0 - r)) + eps)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


@_standalone
def rms_norm(input, normalized_shape, weight=None, eps=None, *, full):  # noqa: A002, ANN001, ANN201
    """``F.rms_norm`` of ``input`` zero-padded to ``full`` elements over the normalised dims."""
    dims = tuple(range(-len(normalized_shape), 0))
    kept = 1
    for size in normalized_shape:
        kept *= size
    eps = torch.finfo(input.dtype).eps if eps is None else eps
    y = input * torch.rsqrt(input.pow(2).mean(dims, keepdim=True) * (kept / full) + eps)
    return y * weight if weight is not None else y


@_standalone
def var(input, dim, correction=1, keepdim=False, *, ratio):  # noqa: A002, ANN001, ANN201
    """``torch.var`` over ``dim`` as if the reduced elements were ``1 / ratio`` times as many, the missing
    ones zero: ``(sum((x - m0)^2) over all) / (N0 - correction)`` from the kept ``N = ratio N0``."""
    v, m = torch.var_mean(input, dim=dim, correction=0, keepdim=keepdim)
    n = input.numel() / max(v.numel(), 1)
    return (v + m * m * (1.0 - ratio)) * (n / (n / ratio - correction))


@_standalone
def std(input, dim, correction=1, keepdim=False, *, ratio):  # noqa: A002, ANN001, ANN201
    """``torch.std``: the square root of ``var`` (repeated here: each kernel stands alone in a .py file)."""
    v, m = torch.var_mean(input, dim=dim, correction=0, keepdim=keepdim)
    n = input.numel() / max(v.numel(), 1)
    return torch.sqrt((v + m * m * (1.0 - ratio)) * (n / (n / ratio - correction)))


# ---- the rewrites: ``(node, kept)``, ``kept`` a ``graphprune.channels.kept.KeptView``

Rewrite = Callable[[fx.Node, Any], None]


def fold_rms(m: Any, ratio: float) -> None:
    """An RMS kept over the original width, carried by the layer itself over the kept ``ratio`` of it:
    ``rsqrt(ratio * mean(x^2) + eps) = rsqrt(mean(x^2) + eps / ratio) / sqrt(ratio)``, so the weight over
    ``sqrt(ratio)`` and eps over ``ratio`` compute it (``eps`` or Hugging Face's ``variance_epsilon``; an
    unset eps is the dtype's, as ``F.rms_norm`` takes it). LayerNorm has no such fold: its mean and
    variance mix two powers of ``ratio``."""
    weight = getattr(m, "weight", None)
    if weight is None:
        raise ValueError("it has no weight to carry the 1/sqrt(kept fraction) scale")
    attr = "variance_epsilon" if hasattr(m, "variance_epsilon") else "eps"
    eps = getattr(m, attr)
    with torch.no_grad():
        weight.mul_(ratio ** -0.5)
    setattr(m, attr, (torch.finfo(weight.dtype).eps if eps is None else eps) / ratio)


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def _input(node: fx.Node) -> fx.Node:
    return node.args[0] if node.args else node.kwargs["input"]


def functional_call(kernel: Callable, max_args: int) -> Rewrite:
    """``F.layer_norm(x, shape, ...)`` (already given its new ``shape``) -> ``kernel``, told the dense
    element count of the normalised dims. ``max_args``: the positional arguments ``kernel`` shares with
    the op (an ATen twin's trailing ``cudnn_enable`` is dropped)."""

    def keep_full_width(node: fx.Node, kept: Any) -> None:
        k = len(node.args[1]) if len(node.args) > 1 else len(node.kwargs["normalized_shape"])
        full = element_count(kept.old_shape(_input(node))[-k:])
        if element_count(kept.new_shape(_input(node))[-k:]) != full:
            node.target, node.args = kernel, node.args[:max_args]
            node.kwargs = {**node.kwargs, "full": full}

    return keep_full_width


def module_call(kernel: Callable, affine: tuple[str, ...]) -> Rewrite:
    """A norm module's call -> ``kernel(x, shape, *affine, eps, full=...)`` on the module's own ``affine``
    parameters, read by ``get_attr`` (``kept`` and the state dict keep their names; the module stays,
    uncalled, and is resized with its parameters)."""

    def keep_full_width(node: fx.Node, kept: Any) -> None:
        m = node.graph.owning_module.get_submodule(str(node.target))
        x = node.args[0]
        full, shape = element_count(m.normalized_shape), tuple(kept.new_shape(x)[-len(m.normalized_shape):])
        if element_count(shape) == full:
            return
        with node.graph.inserting_before(node):
            params = tuple(node.graph.get_attr(f"{node.target}.{a}") if getattr(m, a, None) is not None
                           else None for a in affine)
        node.op, node.target = "call_function", kernel
        node.args, node.kwargs = (x, shape, *params, m.eps), {"full": full}

    return keep_full_width


def already_full_width(node: fx.Node, kept: Any) -> None:
    """A full-width norm keeps ``full``, the dense count, through later rounds: nothing to change."""


def _reduced_ratio(node: fx.Node, kept: Any, dim: Any) -> float:
    """Kept over dense element count of the dims ``dim`` reduces (every dim when None)."""
    old, new = kept.old_shape(_input(node)), kept.new_shape(_input(node))
    dims = range(len(old)) if dim is None else [d % len(old) for d in ((dim,) if isinstance(dim, int) else dim)]
    return element_count([new[d] for d in dims]) / element_count([old[d] for d in dims])


def _dim(node: fx.Node) -> Any:
    return node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")


def scaled_mean(node: fx.Node, kept: Any) -> None:
    """``mean(x, dim)`` -> ``mean(x, dim) * (C / C0)``, i.e. ``sum / C0``: one multiply after the mean
    (an ATen graph's own ``aten.mul.Tensor`` where the mean is an ATen op)."""
    ratio = _reduced_ratio(node, kept, _dim(node))
    if ratio == 1:
        return
    mul = torch.ops.aten.mul.Tensor if isinstance(node.target, torch._ops.OpOverload) else operator.mul
    with node.graph.inserting_after(node):
        scaled = node.graph.call_function(mul, (node, ratio))
    node.replace_all_uses_with(scaled, delete_user_cb=lambda user: user is not scaled)


def variance_call(kernel: Callable) -> Rewrite:
    """``torch.var`` / ``Tensor.std`` (any of their signatures) -> ``kernel(x, dim, correction=,
    keepdim=, ratio=)``; an already full-width call only updates its ``ratio``."""

    def keep_full_width(node: fx.Node, kept: Any) -> None:
        ratio = _reduced_ratio(node, kept, _dim(node))
        if ratio == 1:
            return
        if node.target is kernel:
            node.kwargs = {**node.kwargs, "ratio": node.kwargs["ratio"] * ratio}
            return
        kw = dict(node.kwargs)
        unbiased = node.args[2] if len(node.args) > 2 else kw.pop("unbiased", True)
        correction = kw.pop("correction", None)
        correction = int(bool(unbiased)) if correction is None else correction
        keepdim = node.args[3] if len(node.args) > 3 else kw.pop("keepdim", False)
        node.op, node.target = "call_function", kernel
        node.args = (_input(node), _dim(node))
        node.kwargs = {"correction": correction, "keepdim": keepdim, "ratio": ratio}

    return keep_full_width
