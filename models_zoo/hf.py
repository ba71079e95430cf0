"""Hugging Face transformers models from small configs, offline: ``hf:llama``, ``hf:bert``...

Why: the models people prune today are transformers' classes, and a spec must build one without the
hub (no network at run time, random weights). Each entry is a config small enough to compile in about a
second (hidden 64, 2 layers, 4 heads, 2 key/value heads where the family has grouped-query attention),
its model class and its example inputs, from a seeded generator like every zoo input. ``transformers``
is an optional extra (``pip install 'graphprune[hf]'``); nothing here imports it before a spec asks.

Inputs are positional in the order of the model's ``forward``; a keyword-only input of the family
(T5's and BART's ``decoder_input_ids``) is passed by position after ``None`` for the parameters before
it, which ``compile`` keeps as constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from models_zoo._common import DEFAULT_SEED, seeded

VOCAB, SEQ, IMAGE = 100, 16, 32
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


@dataclass(frozen=True)
class HFEntry:
    config: str  # the config class in transformers
    model: str  # the model class
    fields: dict[str, Any]
    inputs: str  # "ids", "ids+decoder", "image", "audio", "features"
    part: str | None = None  # a submodule returned instead of the whole model ("encoder")


ENTRIES: dict[str, HFEntry] = {
    "bert": HFEntry("BertConfig", "BertModel", {**SMALL, "vocab_size": VOCAB}, "ids"),
    "bert-cls": HFEntry("BertConfig", "BertForSequenceClassification", {**SMALL, "vocab_size": VOCAB}, "ids"),
    "gpt2": HFEntry("GPT2Config", "GPT2LMHeadModel", dict(n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                          n_positions=64, bos_token_id=0, eos_token_id=0), "ids"),
    "llama": HFEntry("LlamaConfig", "LlamaForCausalLM", {**SMALL, "vocab_size": VOCAB, "num_key_value_heads": 2},
                     "ids"),
    "qwen2": HFEntry("Qwen2Config", "Qwen2ForCausalLM", {**SMALL, "vocab_size": VOCAB, "num_key_value_heads": 2},
                     "ids"),
    "t5": HFEntry("T5Config", "T5ForConditionalGeneration", dict(d_model=64, d_ff=128, num_layers=2, num_heads=4,
                                                                 d_kv=16, vocab_size=VOCAB), "ids+decoder"),
    "bart": HFEntry("BartConfig", "BartForConditionalGeneration",
                    dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                         decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=VOCAB,
                         max_position_embeddings=64, pad_token_id=1), "ids"),
    "vit": HFEntry("ViTConfig", "ViTForImageClassification", {**SMALL, "image_size": IMAGE, "patch_size": 8},
                   "image"),
    "swin": HFEntry("SwinConfig", "SwinForImageClassification",
                    dict(image_size=IMAGE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                         window_size=4), "image"),
    "convnext": HFEntry("ConvNextConfig", "ConvNextForImageClassification",
                        dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=IMAGE), "image"),
    "resnet": HFEntry("ResNetConfig", "ResNetForImageClassification",
                      dict(hidden_sizes=[16, 32], depths=[1, 1], embedding_size=16), "image"),
    "wav2vec2": HFEntry("Wav2Vec2Config", "Wav2Vec2Model",
                        {**SMALL, "conv_dim": (16, 16), "conv_stride": (5, 2), "conv_kernel": (10, 3),
                         "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}, "audio"),
    "whisper-encoder": HFEntry("WhisperConfig", "WhisperForConditionalGeneration",
                               dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                    decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                                    num_mel_bins=16, max_source_positions=32, vocab_size=VOCAB, pad_token_id=1,
                                    bos_token_id=0, eos_token_id=0, decoder_start_token_id=0),
                               "features", part="encoder"),
    "clip-vision": HFEntry("CLIPVisionConfig", "CLIPVisionModel",
                           dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                image_size=IMAGE, patch_size=8), "image"),
}

INPUT_SHAPES = {"ids": (1, SEQ), "ids+decoder": (1, SEQ), "image": (1, 3, IMAGE, IMAGE), "audio": (1, 800),
                "features": (1, 16, 64)}


def _inputs(kind: str, batch: int = 2) -> tuple[Any, ...]:
    """Batch 2: a batch of one would let a per-example statistic pass for a per-batch one."""
    generator = torch.Generator().manual_seed(DEFAULT_SEED)
    shape = (batch, *INPUT_SHAPES[kind][1:])
    if kind.startswith("ids"):
        ids = torch.randint(2, VOCAB, shape, generator=generator)
        return (ids,) if kind == "ids" else (ids, None, ids.clone())
    return (torch.randn(*shape, generator=generator),)


def build(transformers: ModuleType, name: str, seed: int = DEFAULT_SEED) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """The model ``hf:name`` names, in eval mode, with weights drawn from ``seed``, and its example inputs."""
    entry = ENTRIES[name]
    config = getattr(transformers, entry.config)(**entry.fields)
    with seeded(seed):
        model = getattr(transformers, entry.model)(config)
    if entry.part == "encoder":
        model = model.get_encoder()
    return model.eval(), _inputs(entry.inputs)


def names() -> list[str]:
    return list(ENTRIES)

