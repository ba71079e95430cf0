"""Torch-Pruning on Hugging Face models, set up as its own examples do (for ``transformers_vs_tp.py``).

Why a module of its own: the comparison is only fair if Torch-Pruning runs with the settings its authors
published, so each setting here follows one example of its repository and says which:

* BERT: ``examples/transformers/prune_hf_bert.py`` — ``MagnitudeImportance(p=2, group_reduction="mean")``,
  ``pruning_ratio=0.5``, ``num_heads`` for query/key/value, ``prune_num_heads=True``,
  ``prune_head_dims=False``, ``head_pruning_ratio=0.5``, the pooler ignored, then the attention modules'
  ``num_attention_heads`` / ``attention_head_size`` / ``all_head_size`` set from the pruned widths.
* Llama: ``examples/LLMs/prune_llm.py`` at ``pruning_ratio=0.5`` — ``GroupMagnitudeImportance(p=2,
  group_reduction="mean")``, heads + hidden width + MLP, ``round_to=4``, ``lm_head`` ignored, then
  ``config.hidden_size``, the attention's head counts and ``config.intermediate_size`` set from the
  pruned widths.

On transformers 5 with Torch-Pruning 1.6 the Llama setting never returns: building the pruning group of a
``v_proj`` walks the rotary embedding's ``rotate_half`` (a slice and a concatenation) round and round with
ever larger indices. ``prune`` runs each setting under a wall-clock alarm and returns the timeout as the
row's status; ``llama-heads-kept`` is the closest setting that does finish (the same pruner, with the
q/k/v projections not used as roots, so heads stay and the hidden width and the MLP are pruned).
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class TPTimeout(Exception):
    pass


@contextmanager
def alarm(seconds: float):
    """Raise TPTimeout in this (main) thread after ``seconds``: Torch-Pruning's loops are pure Python.
    The alarm repeats every 2 s until the block ends: a signal handled inside a weakref callback has its
    exception swallowed ("Exception ignored in ..."), and one alarm alone then never stops the loop."""
    def fire(signum: int, frame: Any) -> None:
        raise TPTimeout(f"did not finish in {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 2.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _bert_heads(model: nn.Module) -> dict[nn.Module, int]:
    from transformers.models.bert.modeling_bert import BertSelfAttention

    return {lin: m.num_attention_heads for m in model.modules() if isinstance(m, BertSelfAttention)
            for lin in (m.query, m.key, m.value)}


def prune_bert(tp: Any, model: nn.Module, ids: torch.Tensor) -> None:
    """prune_hf_bert.py's settings; the output transform reads the model's own output (pooler or logits)."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    heads = _bert_heads(model)
    bert = getattr(model, "bert", model)
    ignored = [bert.pooler] + ([model.classifier] if hasattr(model, "classifier") else [])
    pruner = tp.pruner.BasePruner(
        model, {"input_ids": ids}, global_pruning=False,
        importance=tp.importance.MagnitudeImportance(p=2, group_reduction="mean"), iterative_steps=1,
        pruning_ratio=0.5, num_heads=heads, prune_head_dims=False, prune_num_heads=True, head_pruning_ratio=0.5,
        output_transform=lambda out: (out.logits if hasattr(out, "logits") else out.pooler_output).sum(),
        ignored_layers=ignored)
    for group in pruner.step(interactive=True):
        group.prune()
    for m in model.modules():  # the example's attribute fix: its forward reshapes with these
        if isinstance(m, BertSelfAttention):
            m.num_attention_heads = pruner.num_heads[m.query]
            m.attention_head_size = m.query.out_features // m.num_attention_heads
            m.all_head_size = m.query.out_features


def prune_llama(tp: Any, model: nn.Module, ids: torch.Tensor, heads_as_roots: bool = True) -> None:
    """prune_llm.py's settings at pruning_ratio 0.5 (``heads_as_roots=False``: q/k/v not used as roots)."""
    config = model.config
    heads, attention = {}, []
    for name, m in model.named_modules():
        if name.endswith("self_attn"):
            heads.update({m.q_proj: config.num_attention_heads, m.k_proj: config.num_key_value_heads,
                          m.v_proj: config.num_key_value_heads})
            attention += [m.q_proj, m.k_proj, m.v_proj]
    gqa = config.num_attention_heads != config.num_key_value_heads
    pruner = tp.pruner.BasePruner(
        model, example_inputs=ids, importance=tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean"),
        global_pruning=False, output_transform=lambda out: out.logits, pruning_ratio=0.5,
        ignored_layers=[model.lm_head] + ([] if heads_as_roots else attention), num_heads=heads,
        prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.5, out_channel_groups={}, round_to=4)
    for group in pruner.step(interactive=True):
        group.prune()
    _fix_llama_attributes(model, gqa)


def _fix_llama_attributes(model: nn.Module, gqa: bool) -> None:
    """What prune_llm.py updates after pruning: hidden size, head counts, intermediate size."""
    config = model.config
    config.hidden_size = model.lm_head.in_features
    for name, m in model.named_modules():
        if name.endswith("self_attn"):
            m.hidden_size = m.q_proj.out_features
            m.num_heads = m.hidden_size // m.head_dim
            config.num_attention_heads = m.num_heads
            if not gqa:
                m.num_key_value_heads = config.num_key_value_heads = m.num_heads
            if hasattr(m, "num_key_value_groups"):
                m.num_key_value_groups = m.num_heads // config.num_key_value_heads
        elif name.endswith("mlp"):
            m.hidden_size = m.gate_proj.in_features
            config.intermediate_size = m.gate_proj.out_features


SETTINGS: dict[str, tuple[str, Callable[..., None], str]] = {
    # name: (model family, prune function, what the table says)
    "bert": ("bert", prune_bert, "prune_hf_bert.py: heads 50 %, ratio 0.5, pooler ignored"),
    "llama": ("llama", prune_llama, "prune_llm.py: heads + hidden + MLP, ratio 0.5, round_to 4"),
    "llama-heads-kept": ("llama", lambda tp, m, ids: prune_llama(tp, m, ids, heads_as_roots=False),
                         "prune_llm.py, q/k/v_proj not roots (heads kept): hidden + MLP"),
}


def settings_for(family: str) -> list[str]:
    return [name for name, (fam, _, _) in SETTINGS.items() if fam == family]


def run(setting: str, model: nn.Module, ids: torch.Tensor, timeout: float) -> tuple[nn.Module | None, dict[str, Any]]:
    """Prune a deepcopy of ``model`` with one setting: the pruned copy (None if it failed) and the record."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model)
    start = time.perf_counter()
    try:
        with alarm(timeout):
            SETTINGS[setting][1](tp, pruned, ids)
    except Exception as e:  # noqa: BLE001 - a tool failure is a result row, not a crash
        return None, {"status": "error", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                      "seconds": time.perf_counter() - start}
    return pruned, {"status": "ok", "seconds": time.perf_counter() - start}
