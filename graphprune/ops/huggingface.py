"""Hugging Face transformers' layers, what ``graphprune.apply(..., form="module")`` needs to resize them, in
one place. Registered per model family once its modeling module has been imported (a model built from it
implies the import): graphprune never imports transformers itself.

Every declaration is a ``resize_block`` (``graphprune.ops.registry``): these blocks are traced through,
their projections are ``nn.Linear``s whose own attributes removal already sets. Each family's entry says,
next to each other, how the block's attributes follow its children and which ``config`` fields it implies:

- decoder attention (Llama, Mistral, Qwen2, Qwen3): ``head_dim`` and ``num_key_value_groups`` from the
  kept rows of ``q_proj`` / ``k_proj`` (whole heads, grouped-query attention kept consistent by the
  pruning: the groups must stay equal); ``scaling`` keeps the dense value, as the pruned graph does;
  config ``num_attention_heads`` / ``num_key_value_heads`` / ``head_dim``;
- MLP (gate/up/down): ``intermediate_size``, ``hidden_size``; config ``intermediate_size``;
- Bert-style self-attention: ``num_attention_heads`` / ``attention_head_size`` / ``all_head_size``;
  ``BertIntermediate``: config ``intermediate_size``;
- rotary embeddings: none (the graph slices ``inv_freq``; the config then keeps its dense values, since
  ``from_pretrained`` would recompute the table from it);
- RMSNorm and decoder layers: no width attribute beyond ``hidden_size``; an RMSNorm whose statistic the
  graph keeps over the original width (``statistics = "exact"``) folds it into its weight and
  ``variance_epsilon`` (``full_width.fold_rms``), and config ``rms_norm_eps`` follows, so a reloaded
  model folds it too.

``config`` (any ``PreTrainedModel``, children first so the root runs last) is updated where every layer
implies the same value *and* a model built from the new config has exactly the module's tensor shapes, so
``save_pretrained`` + ``from_pretrained`` round-trips. Otherwise (layers pruned differently, or widths the
config cannot describe, such as Bert's head count at a fixed hidden size) it keeps the dense values and a
warning says so: ``from_pretrained`` then refuses the checkpoint's shapes rather than loading wrong ones.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from collections.abc import Callable, Mapping

import torch
from torch import nn

from graphprune.ops.attention import head_widths
from graphprune.ops.full_width import fold_rms
from graphprune.ops.registry import block_resizer, declare, register_when_imported

Kept = Mapping[str, Mapping[int, list[int]]]
ConfigFields = Callable[[nn.Module], dict[str, int]]
CONFIG_FIELDS: dict[type, ConfigFields] = {}  # block class -> the config fields it implies
DECODERS = ("llama", "mistral", "qwen2", "qwen3")  # q/k/v/o_proj attention, gate/up/down MLP
ENCODERS = ("bert", "roberta")  # query/key/value self-attention, dense intermediate


def _rows(kept: Kept, name: str) -> list[int] | None:
    return kept.get(f"{name}.weight", {}).get(0)


def _decoder_attention(m: nn.Module, kept: Kept) -> None:
    dense_q, dense_kv = m.config.num_attention_heads, m.config.num_key_value_heads
    q_heads, head_dim = head_widths(_rows(kept, "q_proj"), dense_q, m.head_dim)
    kv_heads, kv_dim = head_widths(_rows(kept, "k_proj"), dense_kv, m.head_dim)
    if (kv_heads, kv_dim) != head_widths(_rows(kept, "v_proj"), dense_kv, m.head_dim) or kv_dim != head_dim:
        raise ValueError("q, k and v keep different head widths")
    if q_heads % kv_heads:
        raise ValueError(f"{q_heads} query heads do not split evenly over {kv_heads} key/value heads")
    m.head_dim, m.num_key_value_groups = head_dim, q_heads // kv_heads


def _decoder_attention_config(m: nn.Module) -> dict[str, int]:
    return {"num_attention_heads": m.q_proj.out_features // m.head_dim,
            "num_key_value_heads": m.k_proj.out_features // m.head_dim, "head_dim": m.head_dim}


def _gated_mlp(m: nn.Module, kept: Kept) -> None:
    m.intermediate_size, m.hidden_size = m.gate_proj.out_features, m.down_proj.out_features


def _decoder_layer(m: nn.Module, kept: Kept) -> None:
    if hasattr(m, "hidden_size"):
        m.hidden_size = m.self_attn.o_proj.out_features


def _encoder_attention(m: nn.Module, kept: Kept) -> None:
    m.num_attention_heads, m.attention_head_size = head_widths(_rows(kept, "query"), m.num_attention_heads,
                                                               m.attention_head_size)
    m.all_head_size = m.num_attention_heads * m.attention_head_size


def _no_widths(m: nn.Module, kept: Kept) -> None:
    """A layer whose only sizes are its tensors' (an RMSNorm's weight)."""


def update_config(model: nn.Module, kept: Kept) -> None:
    """Write the widths every layer agrees on into ``model.config``, if the config then rebuilds them."""
    config = getattr(model, "config", None)
    if config is None:
        return
    recomputed = _sliced_non_persistent(model, kept)
    if recomputed:  # a rotary table's kept frequencies: a model built from any config recomputes others
        return _keep_dense(model, f"{recomputed} is sliced, and from_pretrained recomputes it from the config")
    implied: dict[str, set[int]] = {}
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if isinstance(embeddings, nn.Embedding):
        implied["hidden_size"] = {embeddings.embedding_dim}
    for m in model.modules():
        fields = CONFIG_FIELDS.get(type(m))
        for field, value in (fields(m) if fields is not None else {}).items():
            implied.setdefault(field, set()).add(value)
    uneven = {f: sorted(v) for f, v in implied.items() if len(v) > 1}
    if uneven:
        field, values = next(iter(uneven.items()))
        return _keep_dense(model, f"layers differ in {field} ({', '.join(map(str, values))})")
    new = {f: v.pop() for f, v in implied.items() if getattr(config, f, None) is not None}
    if all(getattr(config, f) == v for f, v in new.items()):
        return
    candidate = copy.deepcopy(config)
    for field, value in new.items():
        setattr(candidate, field, value)
    mismatch = _rebuild_mismatch(model, candidate)
    if mismatch:
        return _keep_dense(model, f"{type(config).__name__} with {new} would build {mismatch}")
    for field, value in new.items():
        setattr(config, field, value)


def _sliced_non_persistent(model: nn.Module, kept: Kept) -> str:
    """The first sliced buffer a checkpoint does not hold (``persistent=False``), or ''."""
    for fqn in kept:
        path, _, name = fqn.rpartition(".")
        if name in model.get_submodule(path)._non_persistent_buffers_set:
            return fqn
    return ""


def _rebuild_mismatch(model: nn.Module, config: object) -> str:
    """'' if ``type(model)(config)`` has the module's tensor shapes, else the first difference."""
    with torch.device("meta"):
        rebuilt = type(model)(config)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, t in rebuilt.state_dict().items():
        if name in want and tuple(t.shape) != want[name]:
            return f"{name} as {list(t.shape)}, the module has {list(want[name])}"
    return ""


def _keep_dense(model: nn.Module, why: str) -> None:
    warnings.warn(f"apply: {type(model).__name__}.config keeps its dense widths ({why}): save_pretrained + "
                  f"from_pretrained cannot rebuild this module (from_pretrained refuses the shapes); save it with "
                  f"torch.save", stacklevel=2)


def _family(module: str, blocks: Mapping[str, tuple[Callable[..., None], ConfigFields | None]],
            rms_norms: tuple[str, ...] = ()) -> Callable[[], None]:
    def register() -> None:
        try:
            modeling = importlib.import_module(module)
        except Exception:  # transformers broken, or a version without this family: nothing to register
            return
        for name, (resize, fields) in blocks.items():
            cls = getattr(modeling, name, None)
            if isinstance(cls, type):
                block_resizer([cls])(resize)
                if fields is not None:
                    CONFIG_FIELDS[cls] = fields
        for name in rms_norms:  # weight * x * rsqrt(mean(x^2) + variance_epsilon)
            cls = getattr(modeling, name, None)
            if isinstance(cls, type):
                declare([cls], fold_full_width=fold_rms)

    return register


def _register_root() -> None:
    try:
        modeling_utils = importlib.import_module("transformers.modeling_utils")
    except Exception:
        return
    block_resizer([modeling_utils.PreTrainedModel])(update_config)


def _intermediate_config(m: nn.Module) -> dict[str, int]:
    return {"intermediate_size": m.dense.out_features}


for _name in DECODERS:
    _prefix = {"qwen2": "Qwen2", "qwen3": "Qwen3"}.get(_name, _name.capitalize())
    register_when_imported(f"transformers.models.{_name}.modeling_{_name}", _family(
        f"transformers.models.{_name}.modeling_{_name}",
        {f"{_prefix}Attention": (_decoder_attention, _decoder_attention_config),
         f"{_prefix}MLP": (_gated_mlp, lambda m: {"intermediate_size": m.intermediate_size}),
         f"{_prefix}RMSNorm": (_no_widths, lambda m: {"rms_norm_eps": m.variance_epsilon}),
         f"{_prefix}DecoderLayer": (_decoder_layer, None), f"{_prefix}RotaryEmbedding": (_no_widths, None)},
        rms_norms=(f"{_prefix}RMSNorm",)))
for _name in ENCODERS:
    _prefix = {"roberta": "Roberta"}.get(_name, _name.capitalize())
    register_when_imported(f"transformers.models.{_name}.modeling_{_name}", _family(
        f"transformers.models.{_name}.modeling_{_name}",
        {f"{_prefix}SelfAttention": (_encoder_attention, lambda m: {"num_attention_heads": m.num_attention_heads}),
         f"{_prefix}Intermediate": (_no_widths, _intermediate_config)}))
register_when_imported("transformers.modeling_utils", _register_root)
