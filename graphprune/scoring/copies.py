"""Scoring copies for the path criteria (SynFlow, PX): private fx copies of the model rewritten so
that its output is a sum over input->output paths of (product of weights) x (gates) x (input).

Treatment of what is not a plain conv/linear weight (the same for SynFlow and PX, tested in
``tests/scoring/test_paths.py``):

- **Biases** of convs and linears are zero in the copies: a bias starts a path inside the network,
  and both criteria count input->output paths only.
- **BatchNorm** (eval mode) is the fixed affine map ``s * x + t`` with ``s = gamma / sqrt(running_var
  + eps)``. Its shift ``t`` is dropped like a bias; its scale is a per-channel weight on every path
  through the channel, so a copy multiplies by ``f(s)`` where ``f`` is what the criterion does to
  weights (``|s|`` for SynFlow, ``s**2`` for PX's path kernel, ``1`` for PX's data copy). GroupNorm,
  LayerNorm and InstanceNorm have input-dependent statistics; they keep only their affine scale.
- **Activations**: ReLU and ReLU-like gates (LeakyReLU, ReLU6, GELU, SiLU, Hardswish, Mish, ELU,
  CELU, SELU, Softplus, PReLU; as modules, functions or ``x.relu()``) become a ``Gate``: the identity
  in the linearised copies, the recorded mask ``pre-activation > 0`` in PX's data copy. A smooth
  gate is thus treated as the ReLU it approximates.
- Everything else (pooling, adds, concatenations, sigmoid gates of squeeze-excitation, opaque
  leaves) runs unchanged; max-pooling of the (positive) path signal stays a max.

The copies own their tensors (deep copies), so nothing reaches the caller's model or a compile
state's shared parameters. Weights are substituted per call with ``torch.func.functional_call``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils._pytree import tree_leaves

from graphprune.interface import tensor_aliases
from graphprune.ops.registry import inherited
from graphprune.scoring.targets import scored_modules
from graphprune.trace import trace

ACTIVATION_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.ELU, nn.CELU, nn.SELU,
    nn.Softplus, nn.PReLU)
ACTIVATION_FUNCTIONS = frozenset({
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.leaky_relu_, F.gelu, F.silu,
    F.hardswish, F.mish, F.elu, F.celu, F.selu, F.softplus, F.prelu})
ACTIVATION_METHODS = frozenset({"relu", "relu_"})


def to_graph(model: nn.Module) -> fx.GraphModule:
    """The model as a GraphModule (traced with graphprune's tracer unless it already is one)."""
    return model if isinstance(model, fx.GraphModule) else trace(model)


def is_activation(node: fx.Node, root: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(root.get_submodule(str(node.target)), ACTIVATION_MODULES)
    if node.op == "call_function":
        return node.target in ACTIVATION_FUNCTIONS
    return node.op == "call_method" and node.target in ACTIVATION_METHODS


@dataclass
class GateStore:
    """Recorded gates by activation node name; ``apply`` switches the copy's gates from identity to
    the recorded masks."""

    apply: bool = False
    gates: dict[str, torch.Tensor] = field(default_factory=dict)


class GateRecorder(nn.Module):
    """Inserted before an activation of the recording copy: stores ``pre-activation > 0``."""

    def __init__(self, key: str, store: GateStore) -> None:
        super().__init__()
        self.key, self.store = key, store

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.store.gates[self.key] = x.detach() > 0
        return x


class Gate(nn.Module):
    """Replaces an activation in a linearised copy: identity, or the recorded gate."""

    def __init__(self, key: str, store: GateStore) -> None:
        super().__init__()
        self.key, self.store = key, store

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.store.apply:
            return x
        return x * self.store.gates[self.key].to(x.dtype)


class NormScale(nn.Module):
    """A normalisation reduced to its per-channel scale (``channel_dim`` None: trailing dims, as
    LayerNorm's affine)."""

    def __init__(self, scale: torch.Tensor, channel_dim: int | None) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.channel_dim = channel_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim is None:
            return x * self.scale
        shape = [1] * x.ndim
        shape[self.channel_dim] = -1
        return x * self.scale.reshape(shape)


def norm_scale(m: nn.Module) -> tuple[torch.Tensor, int | None] | None:
    """The per-channel scale ``s`` of a normalisation as a fixed affine map and its channel dim (None:
    the trailing dims, as LayerNorm's affine), as its op family declares it; None for other modules."""
    scale = inherited(m, "fixed_scale")
    return scale(m) if scale is not None else None


def recording_copy(model: nn.Module, store: GateStore) -> fx.GraphModule:
    """A copy that runs like the model (eval mode) and records every activation's gate."""
    gm = copy.deepcopy(to_graph(model)).eval()
    for node in list(gm.graph.nodes):
        if is_activation(node, gm):
            name = f"_gate_{node.name}"
            gm.add_submodule(name, GateRecorder(node.name, store))
            with gm.graph.inserting_before(node):
                record = gm.graph.call_module(name, (node.args[0],))
            node.replace_input_with(node.args[0], record)
    gm.recompile()
    return gm


def linear_copy(model: nn.Module, store: GateStore, dtype: torch.dtype = torch.float64) -> fx.GraphModule:
    """A copy with activations replaced by gates, norms by their scale, conv/linear biases zeroed."""
    gm = copy.deepcopy(to_graph(model)).eval()
    for node in list(gm.graph.nodes):
        if is_activation(node, gm):
            name = f"_gate_{node.name}"
            gm.add_submodule(name, Gate(node.name, store))
            with gm.graph.inserting_before(node):
                gate = gm.graph.call_module(name, (node.args[0],))
            node.replace_all_uses_with(gate)
            gm.graph.erase_node(node)
        elif node.op == "call_module" and not isinstance(m := gm.get_submodule(str(node.target)), NormScale):
            if (scale := norm_scale(m)) is not None:
                gm.set_submodule(str(node.target), NormScale(*scale))
    with torch.no_grad():
        for m in scored_modules(gm).values():
            if m.bias is not None:
                m.bias.zero_()
    gm.graph.lint()
    gm.recompile()
    return gm.to(dtype)


class AllOnes(nn.Module):
    """What a conv/linear with every weight 1 and no bias computes, without the C_in x C_out work:
    sum each group's input channels, box-filter the kernel window, repeat per output channel.
    PX's data copy (weights 1) runs on these: exact, and cheaper by about the layer's width."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.linear = isinstance(m, nn.Linear)
        self.out = m.out_features if self.linear else m.out_channels
        if not self.linear:
            self.conv = inherited(m, "functional")  # the layer's own convolution, on a box filter
            self.groups, self.kernel = m.groups, tuple(m.kernel_size)
            self.stride, self.padding, self.dilation = m.stride, m.padding, m.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.linear:
            return x.sum(-1, keepdim=True).expand(*x.shape[:-1], self.out)
        n, c = x.shape[:2]
        summed = x.reshape(n, self.groups, c // self.groups, *x.shape[2:]).sum(2)
        box = torch.ones((self.groups, 1, *self.kernel), dtype=x.dtype, device=x.device)
        y = self.conv(summed, box, None, self.stride, self.padding, self.dilation, self.groups)
        return y.repeat_interleave(self.out // self.groups, dim=1)


def ones_copy(linear: fx.GraphModule, store: GateStore, substitute: bool = False) -> fx.GraphModule:
    """PX's data copy: a linear copy whose norms are the identity and whose gates read ``store``. Its
    scored layers compute with all-ones weights (``AllOnes``), or, with ``substitute``, stay layers
    whose weights each call substitutes (PX's keep masks: 1 kept, 0 pruned)."""
    gm = copy.deepcopy(linear)
    for name, m in list(gm.named_modules()):
        if isinstance(m, Gate):
            m.store = store
        elif isinstance(m, NormScale):
            gm.set_submodule(name, nn.Identity())
    if substitute:
        return gm
    for name, m in scored_modules(gm).items():
        if getattr(m, "padding_mode", "zeros") == "zeros":
            gm.set_submodule(name, AllOnes(m))
        else:  # reflect/replicate/circular padding: keep the layer, with unit weights
            with torch.no_grad():
                m.weight.fill_(1.0)
    return gm


def installed_masks(gm: nn.Module) -> dict[str, torch.Tensor]:
    """Weight fqn -> bool keep mask of every scored layer that already carries a ``weight_mask``
    buffer (a masked twin from ``apply-masks``): its pruned weights are pruned for PX's data copy too."""
    out = {}
    for name, m in scored_modules(gm).items():
        buffer = getattr(m, "weight_mask", None)
        if isinstance(buffer, torch.Tensor):
            out[f"{name}.weight" if name else "weight"] = buffer.detach() != 0
    return out


def norm_scales(gm: fx.GraphModule) -> dict[str, torch.Tensor]:
    """Buffer fqn -> base scale ``s`` of every NormScale in a linear copy."""
    return {f"{name}.scale": m.scale for name, m in gm.named_modules() if isinstance(m, NormScale)}


def untied(module: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` without the alias names of a tied parameter: ``functional_call`` substitutes the
    one tensor under its canonical name into every use (a value per alias is an error there)."""
    aliases = tensor_aliases(module)
    return {k: v for k, v in tensors.items() if k not in aliases} if aliases else tensors


def run(gm: nn.Module, tensors: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """Forward with substituted tensors; every floating output tensor, flattened from the pytree."""
    out = functional_call(gm, untied(gm, tensors), (x,))
    return [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
