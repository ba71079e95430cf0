"""Static-shape decompositions, inlined after value propagation.

Some framework functions are opaque to fx because their Python control flow reads tensor sizes
(torchvision's ``shifted_window_attention`` pads, shifts and masks depending on H and W). Once shapes
are known those branches are constants, so the function can be re-expressed with the sizes baked in,
traced on its own and spliced into the graph in place of the opaque call. The re-expression pins the
dense model's attention scale (so removing head dims is exact) and precomputes the shift mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from graphprune.values import TensorInfo

Builder = Callable[[fx.Node, dict[str, Any]], tuple[Callable[..., Any], list[Any], dict[str, torch.Tensor]] | None]
STATIC_DECOMPOSITIONS: dict[Any, Builder] = {}


def _shift_mask(pad_h: int, pad_w: int, window: list[int], shift: list[int]) -> torch.Tensor:
    mask = torch.zeros((pad_h, pad_w))
    h_slices = ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None))
    w_slices = ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None))
    count = 0
    for h in h_slices:
        for w in w_slices:
            mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    windows = (pad_h // window[0]) * (pad_w // window[1])
    mask = mask.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    mask = mask.permute(0, 2, 1, 3).reshape(windows, window[0] * window[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0).unsqueeze(1).unsqueeze(0)


def _swin_attention(node: fx.Node, values: dict[str, Any]):
    """torchvision.models.swin_transformer.shifted_window_attention with static sizes."""
    names = ["input", "qkv_weight", "proj_weight", "relative_position_bias", "window_size", "num_heads",
             "shift_size", "attention_dropout", "dropout", "qkv_bias", "proj_bias", "logit_scale", "training"]
    bound = dict(zip(names, node.args)) | dict(node.kwargs)
    info, qkv_w = values[bound["input"].name], values[bound["qkv_weight"].name]
    if not isinstance(info, TensorInfo) or not isinstance(qkv_w, TensorInfo):
        return None
    batch, height, width, channels = info.shape
    window, heads = list(bound["window_size"]), int(bound["num_heads"])
    shift = list(bound["shift_size"])
    pad_r = (window[1] - width % window[1]) % window[1]
    pad_b = (window[0] - height % window[0]) % window[0]
    pad_h, pad_w = height + pad_b, width + pad_r
    shift = [0 if window[0] >= pad_h else shift[0], 0 if window[1] >= pad_w else shift[1]]
    windows, tokens = (pad_h // window[0]) * (pad_w // window[1]), window[0] * window[1]
    inner = qkv_w.shape[0] // 3
    head_dim = inner // heads
    cosine = bound.get("logit_scale") is not None
    constants = {"mask": _shift_mask(pad_h, pad_w, window, shift)} if sum(shift) > 0 else {}

    def attention(x, qkv_weight, proj_weight, rel_bias, qkv_bias, proj_bias, logit_scale, mask):
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        x = x.view(batch, pad_h // window[0], window[0], pad_w // window[1], window[1], channels)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch * windows, tokens, channels)
        if cosine and qkv_bias is not None:
            b_q, b_k, b_v = qkv_bias.chunk(3)
            qkv_bias = torch.cat([b_q, b_k * 0.0, b_v])
        qkv = F.linear(x, qkv_weight, qkv_bias)
        qkv = qkv.reshape(batch * windows, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if cosine:
            attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
        else:
            attn = (q * head_dim**-0.5).matmul(k.transpose(-2, -1))
        attn = attn + rel_bias
        if sum(shift) > 0:
            attn = attn.view(batch, windows, heads, tokens, tokens) + mask
            attn = attn.view(-1, heads, tokens, tokens)
        attn = F.softmax(attn, dim=-1)
        x = attn.matmul(v).transpose(1, 2).reshape(batch * windows, tokens, heads * head_dim)
        x = F.linear(x, proj_weight, proj_bias)
        out_channels = x.shape[-1]
        x = x.view(batch, pad_h // window[0], pad_w // window[1], window[0], window[1], out_channels)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, pad_h, pad_w, out_channels)
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x[:, :height, :width, :].contiguous()

    inputs = [bound["input"], bound["qkv_weight"], bound["proj_weight"], bound["relative_position_bias"],
              bound.get("qkv_bias"), bound.get("proj_bias"), bound.get("logit_scale"), "mask"]
    return attention, inputs, constants


def _register_torchvision() -> None:
    try:
        import importlib

        swin = importlib.import_module("torchvision.models.swin_transformer")
    except Exception:
        return
    STATIC_DECOMPOSITIONS[swin.shifted_window_attention] = _swin_attention


_register_torchvision()


def inline_static_decompositions(gm: fx.GraphModule, values: dict[str, Any]) -> int:
    """Replace every call with a registered static decomposition by the traced decomposition."""
    count = 0
    for node in list(gm.graph.nodes):
        builder = STATIC_DECOMPOSITIONS.get(node.target) if node.op == "call_function" else None
        built = builder(node, values) if builder else None
        if built is None:
            continue
        fn, inputs, constants = built
        _splice(gm, node, fn, inputs, constants, count)
        count += 1
    if count:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return count


def _splice(gm: fx.GraphModule, node: fx.Node, fn: Callable[..., Any], inputs: list[Any],
            constants: dict[str, torch.Tensor], k: int) -> None:
    """Trace ``fn`` over the inputs that are present (absent ones are baked in as None) and copy its
    graph in place of ``node``."""
    with gm.graph.inserting_before(node):
        present: list[Any] = []
        for a in inputs:
            if a == "mask":
                if not constants:
                    present.append(None)
                    continue
                name = f"_gp_static_mask_{k}"
                gm.register_buffer(name, constants["mask"], persistent=False)
                present.append(gm.graph.get_attr(name))
            else:
                present.append(a)
        sub = fx.symbolic_trace(_bind_present(fn, present))
        placeholders = [p for p in sub.graph.nodes if p.op == "placeholder"]
        args = [a for a in present if a is not None]
        out = gm.graph.graph_copy(sub.graph, dict(zip(placeholders, args)))
    node.replace_all_uses_with(out)
    gm.graph.erase_node(node)


def _bind_present(fn: Callable[..., Any], present: list[Any]) -> Callable[..., Any]:
    """A function of the present inputs only, calling ``fn`` with None for the absent ones."""
    names = [f"a{i}" for i, a in enumerate(present) if a is not None]
    call = ", ".join(f"a{i}" if a is not None else "None" for i, a in enumerate(present))
    scope: dict[str, Any] = {"fn": fn}
    exec(f"def bound({', '.join(names)}):\n    return fn({call})\n", scope)  # fixed arity for fx
    return scope["bound"]
