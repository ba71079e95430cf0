"""Hugging Face transformers models (``hf:`` specs, small configs, nothing downloaded) compile as a user
calls ``graphprune.compile(model, inputs)``: no wrapper, no leaf list. fx cannot trace them, so the
default capture ("auto") falls back to torch.export; the result is smaller, and it equals the masked
dense model (the hidden width too: LayerNorm/RMSNorm statistics are kept over the original width; with
``statistics = "renormalize"`` they are not, the report says so, and the masked error is large)."""

from __future__ import annotations

import inspect

import pytest
import torch

import graphprune
import models_zoo
from graphprune.testing import masked_equivalence_error

transformers = pytest.importorskip("transformers")
from models_zoo import hf  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

# Wav2Vec2's positional conv takes its weight from ``torch._weight_norm`` (no channel rule yet): that
# conv's channels are frozen and the op named.
UNKNOWN = {"wav2vec2": {"aten._weight_norm.default"}}


def _dense_kwargs(model: torch.nn.Module) -> dict:
    """The capture runs the model without its KV cache (``graphprune.capture.export_call``): so does the
    dense reference, whose output then has the same structure."""
    return {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}


@pytest.mark.parametrize("name", hf.names())
def test_transformers_model_compiles_smaller_and_exact(name: str) -> None:
    model, inputs = models_zoo.load(f"hf:{name}")
    result = graphprune.compile(model, inputs)
    report = result.report
    assert report.artifacts["trace"]["capture"] == "export"
    assert report.artifacts["trace"]["why"].startswith("fx tracing failed")
    assert {u["op"] for u in report.unknown_ops} <= UNKNOWN.get(name, set())
    assert report.params_before / report.params_after >= 1.3
    traced = tuple(x for x in inputs if isinstance(x, torch.Tensor))
    err = masked_equivalence_error(model, result.module, report.kept, inputs, kwargs=_dense_kwargs(model),
                                   pruned_inputs=traced)
    assert report.inexact == []  # LayerNorm/RMSNorm statistics kept over the original width (statistics = "exact")
    assert err < 1e-4, f"masked equivalence error {err:.3e}"
    other = _another_batch_and_length(inputs)  # the batch and sequence dims are dynamic (dynamic = "auto")
    err = masked_equivalence_error(model, result.module, report.kept, other, kwargs=_dense_kwargs(model),
                                   pruned_inputs=tuple(x for x in other if isinstance(x, torch.Tensor)))
    assert err < 1e-4, f"masked equivalence error at {[tuple(x.shape) for x in other if x is not None]}: {err:.3e}"


def _another_batch_and_length(inputs: tuple) -> tuple:
    """One more example, and token ids five shorter (the same ids for an encoder and a decoder input)."""
    generator = torch.Generator().manual_seed(1)
    shapes = {x.shape for x in inputs if isinstance(x, torch.Tensor) and not x.is_floating_point()}
    ids = {s: torch.randint(2, hf.VOCAB, (s[0] + 1, s[1] - 5), generator=generator) for s in shapes}
    return tuple(x if x is None else ids[x.shape] if not x.is_floating_point() else
                 torch.randn(x.shape[0] + 1, *x.shape[1:], generator=generator) for x in inputs)


@pytest.mark.parametrize("name", ["bert-cls", "llama"])
def test_renormalized_statistics_are_reported_and_really_inexact(name: str) -> None:
    model, inputs = models_zoo.load(f"hf:{name}")
    result = graphprune.compile(model, inputs, statistics="renormalize")
    assert result.report.inexact
    traced = tuple(x for x in inputs if isinstance(x, torch.Tensor))
    assert masked_equivalence_error(model, result.module, result.report.kept, inputs, kwargs=_dense_kwargs(model),
                                    pruned_inputs=traced) > 1e-3


def test_model_output_type_survives_the_export_capture() -> None:
    model, inputs = models_zoo.load("hf:llama")
    result = graphprune.compile(model, inputs)
    out = result.module(*inputs)
    assert type(out).__name__ == "CausalLMOutputWithPast"
    assert out.logits.shape == (2, hf.SEQ, hf.VOCAB)
    assert "use_cache=False" in result.report.artifacts["trace"]["why"]


def test_hf_spec_lists_and_refuses_unknown_names() -> None:
    with pytest.raises(graphprune.errors.UnknownModelError, match="hf:llama"):
        models_zoo.load("hf:lama")


HEADS_AND_MLP = {"prune": [{"select": ["*.q_proj", "*.k_proj", "*.v_proj"], "structure": "heads", "sparsity": 0.5},
                           {"select": "*.mlp.gate_proj", "sparsity": 0.5}]}


def test_a_plan_selects_the_users_modules_on_an_export_capture() -> None:
    """The exported graph's modules are plain holders: selection reads the user's (``selectable_modules``),
    so a rule on ``gate_proj`` governs its output rows, not the residual width its input columns read."""
    model, inputs = models_zoo.load("hf:llama")
    result = graphprune.compile(model, inputs, {"prune": [{"select": "*.mlp.gate_proj", "sparsity": 0.5}]})
    assert "model.embed_tokens.weight" not in result.report.kept
    assert set(result.report.kept) == {f"model.layers.{i}.mlp.{p}_proj.weight" for i in (0, 1)
                                       for p in ("gate", "up", "down")}


def test_llama_heads_and_mlp_compile_exactly_and_come_back_as_llama(tmp_path) -> None:  # noqa: ANN001
    model, inputs = models_zoo.load("hf:llama")
    result = graphprune.compile(model, inputs, HEADS_AND_MLP)
    assert result.report.inexact == []
    err = masked_equivalence_error(model, result.module, result.report.kept, inputs, kwargs={"use_cache": False})
    assert err < 1e-5
    llama = result.as_module()
    assert type(llama) is type(model)
    assert (llama.config.num_attention_heads, llama.config.num_key_value_heads) == (2, 1)
    assert llama.config.intermediate_size == 64
    with torch.no_grad():
        assert torch.equal(llama(*inputs, use_cache=False).logits, result.module(*inputs).logits)
        assert llama.generate(inputs[0][:1, :4], max_new_tokens=3, do_sample=False).shape == (1, 7)
    llama.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(again(*inputs, use_cache=False).logits, llama(*inputs, use_cache=False).logits)
