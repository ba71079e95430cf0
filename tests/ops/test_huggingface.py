"""``graphprune/ops/huggingface.py``: transformers models back as their own class through
``graphprune.apply(..., form="module")``, their attention / MLP widths and ``config`` following the kept
slices. ``kept`` comes from compiling a proxy of the same architecture (another seed) and is replayed onto the
model; the copy is checked against the pruned graph (torch.export capture) and here against the masked
dense model too (heads and MLP units: exact)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import graphprune
from graphprune.errors import InputError
from graphprune.testing import masked_model
from tests.test_apply_module import _snapshot, _unchanged, _widths_agree

pytestmark = pytest.mark.usefixtures("single_thread")


def _hf(name: str, seed: int = 0) -> nn.Module:
    """``hf:name``'s small config (``models_zoo.hf``) with weights from ``seed``."""
    from models_zoo import hf

    return hf.build(pytest.importorskip("transformers"), name, seed)[0]


def _llama(seed: int = 0) -> nn.Module:
    return _hf("llama", seed)


def _llama_plan(units_per_layer: list[int]) -> dict:
    """MLP units (``units_per_layer[i]`` of 128 kept in layer i) and half the heads (a KV head with its
    query group)."""
    rules = [{"select": ["*.q_proj", "*.k_proj", "*.v_proj"], "structure": "heads", "sparsity": 0.5}]
    rules += [{"select": f"model.layers.{i}.mlp.gate_proj", "sparsity": 1 - units / 128}
              for i, units in enumerate(units_per_layer)]
    return {"prune": rules}


def _llama_kept(units_per_layer: list[int], ids: torch.Tensor) -> dict[str, dict[int, list[int]]]:
    """The kept of a compile of a Llama of the same architecture (another seed: a proxy)."""
    proxy = _llama(seed=1)
    return graphprune.compile(proxy, (ids,), _llama_plan(units_per_layer)).report.to_dict()


def _apply_quietly(model: nn.Module, kept: dict, ids: torch.Tensor) -> tuple[nn.Module, list[str]]:
    report = kept if "kept" in kept else {"kept": kept}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = graphprune.apply(model, report, (ids,), form="module")
    return module, [str(w.message) for w in caught if str(w.message).startswith("apply:")]


def test_llama_heads_and_mlp_back_as_llama(tmp_path: Path) -> None:
    model = _llama()
    dense_config = model.config.to_dict()
    before = _snapshot(model)
    ids = torch.randint(0, 100, (2, 7))
    report = _llama_kept([96, 96], ids)
    kept = report["kept"]
    module, said = _apply_quietly(model, report, ids)
    assert type(module) is type(model)
    assert not any("masked dense model" in s for s in said)  # captured (torch.export): checked against the graph
    assert _unchanged(model, before) and model.config.to_dict() == dense_config
    c = module.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size, c.hidden_size) == \
        (2, 1, 16, 96, 64)
    attn = module.model.layers[0].self_attn
    assert (attn.head_dim, attn.num_key_value_groups, attn.q_proj.out_features, attn.k_proj.out_features) == \
        (16, 2, 32, 16)
    assert attn.scaling == model.model.layers[0].self_attn.scaling
    _widths_agree(module)
    with torch.no_grad():
        logits = module(ids).logits
        assert torch.allclose(logits, masked_model(model, kept)(ids).logits, atol=1e-5)
        assert not torch.allclose(logits, model(ids).logits, atol=1e-3)  # the removal changed the function
        generated = module.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                                    pad_token_id=0)
    assert generated.shape == (2, 10)
    module.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert loaded.config.num_key_value_heads == 1 and loaded.config.intermediate_size == 96
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, logits, atol=1e-6)


def test_llama_pruned_unevenly_keeps_the_dense_config_and_says_so(tmp_path: Path) -> None:
    model = _llama()
    ids = torch.randint(0, 100, (2, 7))
    report = _llama_kept([96, 112], ids)
    kept = report["kept"]
    module, said = _apply_quietly(model, report, ids)
    assert module.config.intermediate_size == 128
    assert [s for s in said if "config keeps its dense widths (layers differ in intermediate_size (96, 112))" in s]
    with torch.no_grad():
        assert torch.allclose(module(ids).logits, masked_model(model, kept)(ids).logits, atol=1e-5)
    module.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        type(model).from_pretrained(tmp_path)  # refused, not loaded into the dense shapes


def _bert(seed: int = 0) -> nn.Module:
    return _hf("bert", seed)


def _bert_kept(heads: bool, ids: torch.Tensor) -> dict:
    """The report of a compile of a BERT of the same architecture: half the MLP, and half the heads."""
    rules = [{"select": "*.intermediate.dense", "sparsity": 0.5}]
    rules += [{"select": ["*.query", "*.key", "*.value"], "structure": "heads", "sparsity": 0.5}] if heads else []
    return graphprune.compile(_bert(seed=1), (ids,), {"prune": rules}).report.to_dict()


def test_bert_mlp_round_trips_and_heads_keep_the_config(tmp_path: Path) -> None:
    model, ids = _bert(), torch.randint(0, 100, (2, 7))
    module, said = _apply_quietly(model, _bert_kept(False, ids), ids)
    assert module.config.intermediate_size == 64 and not [s for s in said if "config" in s]
    module.save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.allclose(type(model).from_pretrained(tmp_path).eval()(ids).last_hidden_state,
                              module(ids).last_hidden_state, atol=1e-6)
    report = _bert_kept(True, ids)
    kept = report["kept"]
    module, said = _apply_quietly(model, report, ids)
    attn = module.encoder.layer[0].attention.self
    assert (attn.num_attention_heads, attn.attention_head_size, attn.all_head_size) == (2, 16, 32)
    assert module.config.num_attention_heads == 4  # BertConfig derives the head size from hidden / heads
    assert [s for s in said if "BertConfig with" in s and "query.weight as [64, 64]" in s]
    with torch.no_grad():
        assert torch.allclose(module(ids).last_hidden_state, masked_model(model, kept)(ids).last_hidden_state,
                              atol=1e-5)


def test_a_copy_that_differs_from_the_reference_is_refused() -> None:
    """A kept that cuts q rows without the matching o_proj columns: the copy breaks, and apply says so."""
    model, ids = _llama(), torch.randint(0, 100, (2, 7))
    kept = {f"model.layers.{i}.self_attn.q_proj.weight": {0: list(range(32))} for i in range(2)}
    with pytest.raises(InputError, match="^apply: "):
        _apply_quietly(copy.deepcopy(model), kept, ids)
