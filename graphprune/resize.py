"""After parameters shrink, module attributes must say the new sizes (``in_channels``, ``num_features``,
``normalized_shape``, ``groups``...). One small fixer per module family, keyed by type: the module's
forward reads these attributes, and a stale one is a wrong model or a crash at export."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Fixer = Callable[[nn.Module, int | None], None]  # (module, new input channels or None)


def _conv(m: nn.modules.conv._ConvNd, new_in: int | None) -> None:
    w = m.weight
    if m.transposed:
        m.in_channels = w.shape[0]
        m.out_channels = w.shape[1] * m.groups
        return
    per_group_in = w.shape[1]
    if m.groups > 1 and new_in is not None:
        m.groups = new_in // per_group_in
    m.in_channels = per_group_in * m.groups
    m.out_channels = w.shape[0]


def _linear(m: nn.Linear, new_in: int | None) -> None:
    m.out_features, m.in_features = m.weight.shape


def _batch_norm(m: nn.modules.batchnorm._NormBase, new_in: int | None) -> None:
    ref = m.weight if m.weight is not None else m.running_mean
    if ref is not None:
        m.num_features = ref.shape[0]
    elif new_in is not None:
        m.num_features = new_in


def _frozen_bn(m: nn.Module, new_in: int | None) -> None:
    if hasattr(m, "num_features"):
        m.num_features = m.weight.shape[0]


def _group_norm(m: nn.GroupNorm, new_in: int | None) -> None:
    per_group = m.num_channels // m.num_groups
    new = m.weight.shape[0] if m.weight is not None else new_in
    if new is not None:
        m.num_groups = new // per_group if m.num_groups > 1 else 1
        m.num_channels = new


def _layer_norm(m: nn.LayerNorm, new_in: int | None) -> None:
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)


def _embedding(m: nn.Embedding, new_in: int | None) -> None:
    m.num_embeddings, m.embedding_dim = m.weight.shape


def _prelu(m: nn.PReLU, new_in: int | None) -> None:
    m.num_parameters = m.weight.shape[0]


FIXERS: dict[type, Fixer] = {
    nn.modules.conv._ConvNd: _conv,
    nn.Linear: _linear,
    nn.modules.batchnorm._NormBase: _batch_norm,
    nn.GroupNorm: _group_norm,
    nn.LayerNorm: _layer_norm,
    nn.RMSNorm: _layer_norm,
    nn.Embedding: _embedding,
    nn.PReLU: _prelu,
}


def fix_attributes(module: nn.Module, new_in: int | None) -> None:
    for base in type(module).__mro__:
        if base in FIXERS:
            FIXERS[base](module, new_in)
            return
    if type(module).__name__ == "FrozenBatchNorm2d":
        _frozen_bn(module, new_in)
