"""Which tiny model exercises each op key (``BUILDERS``), and the keys no model can (``EXEMPTIONS``).

Keys are listed here explicitly, not read from the family modules, so a newly registered key fails the
completeness test until someone writes (or reuses) a builder for it or says why it cannot have one.
"""

from __future__ import annotations

import builtins
import functools
import operator

import torch
import torch.nn.functional as F
import torchvision
from timm.layers.conv2d_same import Conv2dSame
from timm.layers.norm_act import BatchNormAct2d, FrozenBatchNormAct2d, SyncBatchNormAct
from torch import nn
from torchvision.models import swin_transformer
from torchvision.ops import misc
from torchvision.ops.stochastic_depth import StochasticDepth, stochastic_depth

from graphprune.ops import full_width
from graphprune.ops.aten import ATEN_TWINS
from graphprune.ops.registry import Method, methods
from graphprune.scoring import masked
from graphprune.scoring.masked import masked_module
from tests.ops.op_builders import Builder, as_float, both, first, invoke, op, positive, times

BUILDERS: dict[object, Builder] = {}


def cover(builder: Builder, *keys: object) -> None:
    for key in keys:
        assert key not in BUILDERS, f"{key} listed twice"
        BUILDERS[key] = builder


def _with(**tensors):  # noqa: ANN202
    return lambda: {k: v() for k, v in tensors.items()}


def _w(*shape: int):  # noqa: ANN202
    return lambda: torch.randn(*shape) * 0.3


# ---- element-wise (graphprune/ops/elementwise.py)
cover(op(), operator.neg, operator.abs, torch.relu, torch.relu_, torch.tanh, torch.abs, torch.neg, torch.sin,
      torch.erf, torch.square, torch.sign, torch.floor, torch.ceil, torch.round, torch.nan_to_num, torch.clone,
      torch.detach, F.relu, F.relu6, F.gelu, F.silu, F.tanh, F.hardswish, F.leaky_relu, F.elu, F.selu, F.celu,
      F.mish, F.softsign, F.tanhshrink, F.elu_, F.leaky_relu_, F.hardtanh, F.hardtanh_, torch.sigmoid, torch.exp,
      torch.cos, F.sigmoid, F.hardsigmoid, F.softplus, F.logsigmoid,
      *methods("relu", "relu_", "tanh", "tanh_", "abs", "neg", "float", "contiguous", "clone", "detach", "sign",
               "square", "sin", "erf", "floor", "ceil", "round", "cpu", "__neg__", "__abs__", "sigmoid", "sigmoid_",
               "exp", "cos", "requires_grad_"),
      nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish,
      nn.Softsign, nn.Tanhshrink, nn.Identity, nn.Hardtanh, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus,
      nn.LogSigmoid, nn.Dropout, nn.AlphaDropout)
cover(op(pre=positive), torch.sqrt, torch.log, torch.rsqrt, torch.reciprocal,
      *methods("sqrt", "log", "rsqrt", "reciprocal"))
cover(op(post=as_float), *methods("half", "double", "bfloat16"))
cover(op("dense", torch.float64, post=as_float), Method("to"), Method("type"))
cover(op(pre=lambda h: (h, h)), Method("type_as"))
cover(op(training=False), F.dropout, F.alpha_dropout)
cover(op("image", training=False), F.feature_alpha_dropout, F.dropout2d)
cover(op("signal", training=False), F.dropout1d)
cover(op("volume", training=False), F.dropout3d)
cover(op("dense", 0.5, False), torch.dropout)
cover(op("dense", 0.5, "row", False), stochastic_depth)
cover(op(ctor=(0.5, "row"), leaf=True), StochasticDepth)
cover(op("signal"), nn.Dropout1d)
cover(op("image"), nn.Dropout2d, nn.FeatureAlphaDropout)
cover(op("volume"), nn.Dropout3d)
cover(op("dense", -0.5, 0.5), torch.clamp, torch.clip, *methods("clamp", "clamp_", "clip"))
cover(op("dense", -0.1), torch.clamp_min, Method("clamp_min"))
cover(op("dense", 0.1), torch.clamp_max, Method("clamp_max"))
cover(op("dense", 0.1, 0.0), F.threshold)
cover(op(ctor=(0.1, 0.0)), nn.Threshold)
cover(op(pre=lambda h: (torch.gt(h, 0),), post=times), operator.invert)
cover(op(n=2), operator.add, operator.sub, operator.mul, operator.iadd, operator.isub, operator.imul, torch.add,
      torch.sub, torch.subtract, torch.mul, torch.multiply, torch.maximum, torch.minimum,
      *methods("add", "add_", "sub", "sub_", "mul", "mul_", "maximum", "minimum", "__add__", "__radd__", "__sub__",
               "__rsub__", "__mul__", "__rmul__"))
cover(op(n=2, pre=lambda a, b: (a, b * b + 1)), operator.truediv, operator.itruediv, torch.div, torch.divide,
      torch.true_divide, *methods("div", "div_", "__truediv__"))
cover(op("dense", 0.7), operator.floordiv, operator.mod, torch.fmod, torch.remainder)
cover(op("dense", 2), operator.pow, torch.pow, Method("pow"))
cover(op(n=2, post=times), torch.eq, torch.ne, torch.lt, torch.gt, torch.le, torch.ge, operator.eq, operator.ne,
      operator.lt, operator.gt, operator.le, operator.ge,
      *methods("eq", "ne", "lt", "gt", "le", "ge", "__eq__", "__ne__", "__lt__", "__gt__", "__le__", "__ge__"))
cover(op(n=2, pre=lambda a, b: (torch.gt(a, 0), torch.gt(b, 0)), post=times), torch.logical_and, torch.logical_or)
cover(op(n=2, pre=lambda a, b: (torch.gt(a, 0), a, b)), torch.where)
cover(op(n=2, pre=lambda a, b: (a, torch.gt(a, 0), b)), Method("where"))
cover(op("dense", 0.3, n=2), torch.lerp, Method("lerp"))
cover(op(n=2, pre=lambda a, b: (a, b, b)), torch.addcmul, Method("addcmul"))
cover(op(n=2, pre=lambda a, b: (a, b, b * b + 1)), torch.addcdiv)
cover(op("dense", 0.5, n=2, pre=lambda a, b: (a, torch.gt(b, 0))), torch.masked_fill,
      *methods("masked_fill", "masked_fill_"))
cover(op("image", ctor=(8,)), nn.PReLU)
cover(op(dim=-1, head=lambda: nn.Linear(4, 2)), F.glu)

# ---- pooling and resampling (graphprune/ops/pooling.py)
cover(op("signal", 2), F.max_pool1d, F.avg_pool1d)
cover(op("signal", 3), F.adaptive_avg_pool1d, F.adaptive_max_pool1d)
cover(op("signal", 2, 2), F.lp_pool1d)
cover(op("image", 2), F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.max_pool2d)
cover(op("image", 2, 2), F.lp_pool2d)
cover(op("image", scale_factor=2), F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear)
cover(op("volume", 2), F.max_pool3d, F.avg_pool3d, F.adaptive_avg_pool3d, F.adaptive_max_pool3d)
cover(op("signal", ctor=(2,)), nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)
cover(op("image", ctor=(2,)), nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
      nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
cover(op("volume", ctor=(2,)), nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)
cover(op("signal", ctor=(2, 2)), nn.LPPool1d)
cover(op("image", ctor=(2, 2)), nn.LPPool2d)

# ---- reductions and normalisations over tokens (graphprune/ops/reduction.py)
REDUCED = ("sum", "mean", "amax", "amin", "std", "var", "logsumexp", "prod", "nansum", "nanmean")
cover(op("seq", 1), *(getattr(torch, n) for n in REDUCED), *methods(*REDUCED))
cover(op("seq", dim=1), torch.norm, Method("norm"), torch.linalg.vector_norm)
cover(op("seq", 1, post=first), torch.max, torch.min, *methods("max", "min"))
cover(op("seq", 1, post=both), torch.std_mean, torch.var_mean)
cover(op("seq", 1, pre=lambda h: (torch.gt(h, 0),), post=as_float), torch.all, torch.any, *methods("all", "any"))
cover(op("seq", 1, post=as_float), torch.argmax, torch.argmin, *methods("argmax", "argmin"))
cover(op("seq", dim=1), F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, F.softmin, F.normalize)
cover(op("seq", 1), torch.cumsum, torch.cumprod, *methods("softmax", "log_softmax", "cumsum", "cumprod"))
cover(op("seq", ctor=(1,)), nn.Softmax, nn.LogSoftmax, nn.Softmin)
cover(op("image", exact=True, through=False), nn.Softmax2d)  # over channels: frozen in exact mode

# ---- shape queries (graphprune/ops/queries.py): sizes that pruning does not change
cover(op("image", "shape", post=lambda y, h: h * y[2]), builtins.getattr)
cover(op("image", post=times), builtins.len, *methods("dim", "ndimension", "is_contiguous"))
cover(op("image", 2, post=times), Method("size"))
cover(op("image", -1, post=times), Method("stride"))
cover(op("image", post=lambda y, h: h * (y > 0)), *methods("numel", "nelement"))
cover(op("image", post=lambda y, h: h + 0 * y), Method("data_ptr"))

# ---- movement (graphprune/ops/reshape.py, permute.py, concat.py, expand.py, indexing.py, pad.py, shuffle.py)
cover(op("image", 1, head=lambda: nn.Linear(8 * 36, 2)), torch.flatten, Method("flatten"))
cover(op("image", head=lambda: nn.Linear(8 * 36, 2)), nn.Flatten)
cover(op("dense", 1, pre=lambda h: (h.unsqueeze(1),)), torch.squeeze, *methods("squeeze", "squeeze_"))
cover(op("dense", 1), torch.unsqueeze, *methods("unsqueeze", "unsqueeze_"))
cover(op(ctor=(1, (2, 4)), head=lambda: nn.Linear(4, 2)), nn.Unflatten)
cover(op("image", pre=lambda h: (h.flatten(1), h)), *methods("view_as", "reshape_as"))
cover(op("dense", (3, 2, 4), head=lambda: nn.Linear(4, 2)), torch.reshape)
cover(op("dense", 3, 2, 4, head=lambda: nn.Linear(4, 2)), *methods("view", "reshape"))
cover(op("dense", -1, (2, 4), head=lambda: nn.Linear(4, 2)), torch.unflatten, Method("unflatten"))
cover(op("image", (0, 2, 3, 1), head=lambda: nn.Linear(8, 2)), torch.permute)
cover(op("image", 0, 2, 3, 1, head=lambda: nn.Linear(8, 2)), Method("permute"))
cover(op("image", 1, 3, head=lambda: nn.Linear(8, 2)), torch.transpose, torch.swapaxes, torch.swapdims,
      *methods("transpose", "swapaxes", "swapdims"))
cover(op("image", 1, -1, head=lambda: nn.Linear(8, 2)), torch.movedim, torch.moveaxis, *methods("movedim", "moveaxis"))
cover(op(post=lambda y, h: y.t()), torch.t, Method("t"))
cover(op("dense", 1, n=2, pre=lambda a, b: ([a, b],), head=lambda: nn.Linear(16, 2)), torch.cat, torch.concat,
      torch.concatenate)
cover(op("dense", 1, n=2, pre=lambda a, b: ([a, b],)), torch.stack)
cover(op("dense", [3, 5], 1, post=lambda y, h: torch.cat([y[1], y[0]], 1)), torch.split, Method("split"))
cover(op("dense", 2, 1, post=both, head=lambda: nn.Linear(4, 2)), torch.chunk, torch.tensor_split,
      *methods("chunk", "tensor_split"))
cover(op("seq", 1, post=both), torch.unbind, Method("unbind"))
cover(op("image", 2, 8, 6, 6, pre=lambda h: (h.amax((2, 3), keepdim=True),), post=times), Method("expand"))
cover(op("image", (2, 8, 6, 6), pre=lambda h: (h.amax((2, 3), keepdim=True),), post=times), torch.broadcast_to,
      Method("broadcast_to"))
cover(op("image", pre=lambda h: (h.amax((2, 3), keepdim=True), h), post=times), Method("expand_as"))
cover(op("dense", 1, 2, head=lambda: nn.Linear(16, 2)), Method("repeat"))
cover(op("dense", (1, 2), head=lambda: nn.Linear(16, 2)), torch.tile, Method("tile"))
cover(op("dense", 2, 1, head=lambda: nn.Linear(16, 2)), torch.repeat_interleave, Method("repeat_interleave"))
cover(op("image", (slice(None), slice(2, 6)), head=lambda: nn.Conv2d(4, 2, 1)), operator.getitem)
cover(op("image", call=lambda key, m, h: invoke(key, h, 1, m.perm), buffers=_with(perm=lambda: torch.randperm(8))),
      torch.index_select, Method("index_select"))
cover(op("image", 1, 2), torch.roll, Method("roll"))
cover(op("image", (1, 1, 1, 1)), F.pad, torch.constant_pad_nd)
for dims, domain in ((1, "signal"), (2, "image"), (3, "volume")):
    cover(op(domain, ctor=(1,)), *(getattr(nn, f"{kind}Pad{dims}d") for kind in ("Zero", "Reflection", "Replication")))
    cover(op(domain, ctor=(1, 0.5)), getattr(nn, f"ConstantPad{dims}d"))
cover(op("image", 2, head=lambda: nn.Conv2d(2, 2, 1)), torch.pixel_shuffle)
cover(op("image", ctor=(2,), head=lambda: nn.Conv2d(2, 2, 1)), nn.PixelShuffle)
cover(op("image", 2, head=lambda: nn.Conv2d(32, 2, 1)), torch.pixel_unshuffle)
cover(op("image", ctor=(2,), head=lambda: nn.Conv2d(32, 2, 1)), nn.PixelUnshuffle)
cover(op("image", 2), torch.channel_shuffle)
cover(op("image", ctor=(2,)), nn.ChannelShuffle)

# ---- contractions and attention (graphprune/ops/attention.py)
cover(op("seq", n=2, pre=lambda a, b: (a, b.transpose(-2, -1)), head=lambda: nn.Linear(5, 2)), torch.matmul,
      operator.matmul, torch.bmm, *methods("matmul", "bmm", "__matmul__"))
cover(op("seq", n=2, pre=lambda a, b: ("bid,bjd->bij", a, b), head=lambda: nn.Linear(5, 2)), torch.einsum)
cover(op("seq", n=3), F.scaled_dot_product_attention)

# ---- layers with weights (graphprune/ops/conv.py, linear.py)
cover(op(ctor=(8, 6), head=lambda: nn.Linear(6, 2)), nn.Linear)
cover(op(call=lambda key, m, h: invoke(key, h, m.w, m.b), params=_with(w=_w(6, 8), b=_w(6)),
         head=lambda: nn.Linear(6, 2)), F.linear)
for domain, nd in (("signal", 1), ("image", 2), ("volume", 3)):
    head = functools.partial(getattr(nn, f"Conv{nd}d"), 6, 2, 1)
    cover(op(domain, ctor=(8, 6, 3), head=head), getattr(nn, f"Conv{nd}d"))
    cover(op(domain, ctor=(8, 6, 2, 2), head=head), getattr(nn, f"ConvTranspose{nd}d"))
    cover(op(domain, call=lambda key, m, h: invoke(key, h, m.w, m.b), params=_with(w=_w(6, 8, *[3] * nd), b=_w(6)),
             head=head), getattr(torch, f"conv{nd}d"))
    cover(op(domain, call=lambda key, m, h: invoke(key, h, m.w, m.b, 2), params=_with(w=_w(8, 6, *[2] * nd), b=_w(6)),
             head=head), getattr(torch, f"conv_transpose{nd}d"))
cover(op("image", ctor=(8, 6, 3), head=lambda: nn.Conv2d(6, 2, 1), leaf=True), Conv2dSame)


def _masked(base: type, *ctor: object):  # noqa: ANN202
    """graphprune's own masked twin of a conv/linear layer (apply-masks makes them), 30 % of weights masked."""
    def make(key: object) -> nn.Module:
        layer = base(*ctor)
        return masked_module(layer, torch.rand(layer.weight.shape) > 0.3)
    return make


for domain, nd in (("signal", 1), ("image", 2), ("volume", 3)):
    cover(op(domain, make=_masked(getattr(nn, f"Conv{nd}d"), 8, 6, 3), head=functools.partial(
        getattr(nn, f"Conv{nd}d"), 6, 2, 1)), getattr(masked, f"MaskedConv{nd}d"))
cover(op(make=_masked(nn.Linear, 8, 6), head=lambda: nn.Linear(6, 2)), masked.MaskedLinear)
cover(op(n=2, ctor=(8, 8, 6), head=lambda: nn.Linear(6, 2)), nn.Bilinear)
cover(op("tokens", ctor=(20, 8)), nn.Embedding)
cover(op("tokens", call=lambda key, m, idx: invoke(key, idx, m.w), params=_with(w=_w(20, 8))), F.embedding)

# ---- normalisation (graphprune/ops/norm.py)
cover(op("dense", ctor=(8,)), nn.BatchNorm1d)
cover(op("image", ctor=(8,)), nn.BatchNorm2d, nn.SyncBatchNorm)
cover(op("image", ctor=(8,), leaf=True), misc.FrozenBatchNorm2d, BatchNormAct2d, SyncBatchNormAct,
      FrozenBatchNormAct2d)
cover(op("volume", ctor=(8,)), nn.BatchNorm3d)
for domain, nd in (("signal", 1), ("image", 2), ("volume", 3)):
    cover(op(domain, ctor=(8, 1e-5, 0.1, True)), getattr(nn, f"InstanceNorm{nd}d"))
cover(op("image", ctor=(4, 8)), nn.GroupNorm)
cover(op("dense", ctor=(8,), exact=True, through=False), nn.LayerNorm, nn.RMSNorm)  # statistics across channels
cover(op("image", ctor=(2,), exact=True, through=False), nn.LocalResponseNorm)
cover(op("image", 2, exact=True, through=False), F.local_response_norm)
cover(op("dense", (8,), exact=True, through=False), F.layer_norm, F.rms_norm)
cover(op("image", call=lambda key, m, h: invoke(key, h, m.mean, m.var, m.w, m.b), params=_with(w=_w(8), b=_w(8)),
         buffers=_with(mean=lambda: torch.randn(8) * 0.1, var=lambda: torch.rand(8) + 0.5)), F.batch_norm)
cover(op("image"), F.instance_norm)
# the full-width kernels a removal through a statistic leaves (graphprune/ops/full_width.py): pruned
# through, exactly, as their dense twins are with statistics = "exact"
cover(op("dense", call=lambda key, m, h: invoke(key, h, (8,), m.w, m.b, 1e-5, full=8),
         params=_with(w=_w(8), b=_w(8))), full_width.layer_norm)
cover(op("dense", call=lambda key, m, h: invoke(key, h, (8,), m.w, None, full=8), params=_with(w=_w(8))),
      full_width.rms_norm)
cover(op("seq", 1, ratio=1.0), full_width.var, full_width.std)
cover(op("image", call=lambda key, m, h: invoke(key, h, 4, m.w, m.b), params=_with(w=_w(8), b=_w(8))), F.group_norm)


def _position_bias(key: object, m: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Swin's per-head bias (1, heads, 4, 4) for 2 x 2 windows, added to 4 x 4 positions of 8 heads."""
    return h[..., :4, :4] + invoke(key, m.table, m.index, [2, 2])


def _swin_tables() -> tuple[dict, dict]:
    attention = swin_transformer.ShiftedWindowAttention(16, [2, 2], [0, 0], 8)
    return {"table": attention.relative_position_bias_table.detach()}, {"index": attention.relative_position_index}


cover(op("image", call=_position_bias, params=lambda: _swin_tables()[0], buffers=lambda: _swin_tables()[1],
         through=False), swin_transformer._get_relative_position_bias)

# ---- ATen ops of a torch.export capture: a twin (graphprune/ops/aten.py) runs its twin's model with the ATen
# key called instead; convolutions and batch norm (conv.py, norm.py) get their own
aten = torch.ops.aten
for _nd in (1, 2, 3):
    cover(BUILDERS[getattr(torch, f"conv{_nd}d")], getattr(aten, f"conv{_nd}d").default)
cover(op("image", call=lambda key, m, h: invoke(key, h, m.w, m.b, m.mean, m.var, False, 0.1, 1e-5, False),
         params=_with(w=_w(8), b=_w(8)), buffers=_with(mean=lambda: torch.randn(8) * 0.1,
                                                     var=lambda: torch.rand(8) + 0.5)), aten.batch_norm.default)
cover(op("dense", 0.5, False), aten.dropout.default, aten.dropout_.default)
cover(op("image", [2, 2]), aten.adaptive_avg_pool2d.default)
cover(op("dense", 4, 1, post=both, head=lambda: nn.Linear(4, 2)), aten.split.Tensor)
# overloads whose scalar or keyword arguments differ from their twin's call
cover(op("dense", 0.0, post=times), aten.eq.Scalar, aten.ne.Scalar, aten.lt.Scalar, aten.le.Scalar, aten.gt.Scalar,
      aten.ge.Scalar)
cover(op("dense", 0.0, pre=lambda h: (torch.gt(h, 0), h)), aten.where.ScalarOther)
cover(op("dense", n=2, pre=lambda a, b: (a, torch.gt(b, 0), torch.tensor(0.5))), aten.masked_fill.Tensor)
cover(op("dense", n=2, pre=lambda a, b: (a * a + 1, b)), aten.pow.Tensor_Tensor)
cover(op("dense", dtype=torch.float64, post=as_float), aten._to_copy.default, aten.to.dtype_layout)
cover(op("dense", torch.device("cpu"), torch.float64, post=as_float), aten.to.device)
cover(op("dense", [1], pre=lambda h: (h.unsqueeze(1),)), aten.squeeze.dims)
cover(op("dense", torch.tensor(-0.5), torch.tensor(0.5)), aten.clamp.Tensor)
cover(op("image", [2, 8, 6, 6], pre=lambda h: (h.amax((2, 3), keepdim=True),), post=times), aten.expand.default)
cover(op("seq", n=2, pre=lambda a, b: (a[0], b[0].transpose(-2, -1)), head=lambda: nn.Linear(5, 2)), aten.mm.default)
for _aten_key, _twin in ATEN_TWINS.items():
    if _aten_key not in BUILDERS:
        cover(BUILDERS[_twin], _aten_key)

EXEMPTIONS: dict[object, str] = {
    Method("cuda"): "moves a tensor to a GPU: the test process runs on CPU only",
    **dict.fromkeys(methods("gelu", "silu", "hardswish"), "torch.Tensor has no such method: no model can call it"),
}
# Keys whose model shows a defect of graphprune: (what, the error compile raises). A strict xfail, so the
# test fails once the defect is fixed and the entry must go.
KNOWN_DEFECTS: dict[object, tuple[str, type]] = {}
assert torchvision  # imported for its registrations (stochastic depth, FrozenBatchNorm2d, Swin)
