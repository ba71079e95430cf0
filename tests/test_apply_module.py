"""``graphprune.apply(model, report, form="module")`` and ``Result.as_module()``: the user's own class back,
its layers resized and their width attributes (and a Hugging Face config) agreeing with the tensors, with
the pruned graph's output (or, where graphprune cannot capture the model yet, the masked dense model's);
what no module can carry is refused in one line."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import graphprune
import models_zoo
from graphprune.errors import InputError
from graphprune.ops.attention import head_widths
from graphprune.testing import masked_model

pytestmark = pytest.mark.usefixtures("single_thread")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return now.keys() == before.keys() and all(torch.equal(now[k], v) for k, v in before.items())


def _widths_agree(module: nn.Module) -> None:
    """Every conv / linear / norm / embedding says the sizes its tensors have."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            assert (m.out_channels, m.in_channels // m.groups) == tuple(m.weight.shape[:2]), name
        elif isinstance(m, nn.Linear):
            assert (m.out_features, m.in_features) == tuple(m.weight.shape), name
        elif isinstance(m, nn.BatchNorm2d):
            assert m.num_features == m.weight.shape[0] == m.running_mean.shape[0], name
        elif isinstance(m, nn.LayerNorm):
            assert tuple(m.normalized_shape) == tuple(m.weight.shape), name
        elif isinstance(m, nn.Embedding):
            assert (m.num_embeddings, m.embedding_dim) == tuple(m.weight.shape), name


def _resnet18() -> nn.Module:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def _deit() -> nn.Module:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_patch16_224", img_size=32, num_classes=10).eval()


@pytest.mark.parametrize("make", [_resnet18, _deit], ids=["torchvision-resnet18", "timm-deit_tiny"])
def test_apply_gives_back_the_users_class(tmp_path: Path, make) -> None:
    model, x = make(), torch.randn(2, 3, 32, 32)
    result = graphprune.compile(model, x)
    path = tmp_path / "r.json"
    path.write_text(result.report.to_json())
    fresh = make()
    before = _snapshot(fresh)
    module = graphprune.apply(fresh, path, x, form="module")
    assert type(module) is type(fresh)
    assert _unchanged(fresh, before), "apply mutated the user's model"
    assert {k: v.shape for k, v in module.state_dict().items()} == \
        {k: v.shape for k, v in result.module.state_dict().items() if k in module.state_dict()}
    y = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(module(y), result.module(y), atol=1e-5)
    _widths_agree(module)
    assert result.report.params_after == sum(p.numel() for p in module.parameters())


def test_timm_attention_widths_follow_the_qkv() -> None:
    model = _deit()
    result = graphprune.compile(model, torch.randn(2, 3, 32, 32))
    module = result.as_module()
    for block in module.blocks:
        attn = block.attn
        assert 3 * attn.num_heads * attn.head_dim == attn.qkv.out_features == 3 * attn.attn_dim
        assert attn.scale == model.blocks[0].attn.scale  # the dense scale, as the pruned graph keeps it
    assert module.embed_dim == module.num_features == module.cls_token.shape[-1] == module.head.in_features
    assert module.embed_dim < model.embed_dim


def test_as_module_keeps_the_compiled_weights_and_depthwise_groups() -> None:
    """After recovery training the compiled weights differ from the model's: as_module carries them;
    depthwise convs lose whole groups (``groups`` follows without the graph's input widths)."""
    model, inputs = models_zoo.load("zoo:mobilenet_tiny")
    before = _snapshot(model)
    result = graphprune.compile(model, inputs, plan="macs-50-global")
    module = result.as_module()
    assert type(module) is type(model) and _unchanged(model, before)
    depthwise = [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels for m in depthwise if m.weight.shape[1] == 1)
    assert any(m.groups < d.groups for m, d in zip(depthwise, [d for d in model.modules()
                                                                 if isinstance(d, nn.Conv2d) and d.groups > 1]))
    x = torch.randn(3, *inputs[0].shape[1:])
    with torch.no_grad():
        assert torch.allclose(module(x), result.module(x), atol=1e-5)


class _RawScale(nn.Module):
    """A user's layer holding a raw per-channel parameter: graphprune does not know its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 3)
        self.scale = nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)) * self.scale.view(1, -1, 1, 1))


def test_an_undeclared_owner_is_refused_by_name() -> None:
    model, x = _RawScale().eval(), torch.randn(2, 3, 8, 8)
    result = graphprune.compile(model, x)
    assert "scale" in result.report.kept
    with pytest.raises(InputError, match=r"_RawScale\).*no declared width attributes") as info:
        result.as_module()
    assert "\n" not in str(info.value)


def test_a_size_baked_in_forward_code_is_refused() -> None:
    """ShuffleNet's channel shuffle reshapes by a size the graph rewrites and no module attribute holds."""
    model, inputs = models_zoo.load("zoo:shufflenet_tiny")
    result = graphprune.compile(model, inputs, plan="macs-50-global")
    with pytest.raises(InputError, match="outside any module.*form='graphmodule'"):
        result.as_module()


def test_unknown_form_and_foreign_tensors_are_refused() -> None:
    model, x = _RawScale().eval(), torch.randn(2, 3, 8, 8)
    with pytest.raises(InputError, match="form 'mine' is not supported"):
        graphprune.apply(model, {"kept": {}}, x, form="mine")
    with pytest.raises(InputError, match="does not have as a channel dimension|does not have"):
        graphprune.apply(model, {"kept": {"nope.weight": {0: [0]}}}, x, form="module")


@pytest.mark.parametrize(("rows", "want"), [
    (None, (4, 16)),
    (list(range(16, 48)), (2, 16)),  # whole heads 1 and 2
    ([h * 16 + d for h in range(4) for d in range(8)], (4, 8)),  # the same number of dims in every head
])
def test_head_widths(rows: list[int] | None, want: tuple[int, int]) -> None:
    assert head_widths(rows, 4, 16) == want


@pytest.mark.parametrize("rows", [list(range(20)), [0, 1, 16], list(range(16)) + list(range(64 + 16, 64 + 32))])
def test_head_widths_refuses_what_no_block_can_describe(rows: list[int]) -> None:
    with pytest.raises(ValueError):
        head_widths(rows, 4, 16, parts=1 if max(rows) < 64 else 2)


# ---- Hugging Face: kept built by hand (graphprune's capture of transformers is not ready yet)


def _llama():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    return transformers.LlamaForCausalLM(config).eval()


def _llama_kept(units_per_layer: list[int]) -> dict[str, dict[int, list[int]]]:
    """MLP units (``units_per_layer[i]`` kept in layer i) and KV head 1 with its query group (heads 2, 3)."""
    g = torch.Generator().manual_seed(1)
    kept: dict[str, dict[int, list[int]]] = {}
    for i, units in enumerate(units_per_layer):
        p = f"model.layers.{i}."
        index = sorted(torch.randperm(128, generator=g)[:units].tolist())
        kept |= {p + "mlp.gate_proj.weight": {0: index}, p + "mlp.up_proj.weight": {0: index},
                 p + "mlp.down_proj.weight": {1: index}, p + "self_attn.q_proj.weight": {0: list(range(32))},
                 p + "self_attn.k_proj.weight": {0: list(range(16))},
                 p + "self_attn.v_proj.weight": {0: list(range(16))},
                 p + "self_attn.o_proj.weight": {1: list(range(32))}}
    return kept


def _apply_quietly(model: nn.Module, kept: dict, ids: torch.Tensor) -> tuple[nn.Module, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = graphprune.apply(model, {"kept": kept}, (ids,), form="module")
    return module, [str(w.message) for w in caught if str(w.message).startswith("apply:")]


def test_llama_heads_and_mlp_back_as_llama(tmp_path: Path) -> None:
    model = _llama()
    dense_config = model.config.to_dict()
    before = _snapshot(model)
    kept = _llama_kept([96, 96])
    ids = torch.randint(0, 100, (2, 7))
    module, said = _apply_quietly(model, kept, ids)
    assert type(module) is type(model)
    assert any("masked dense model" in s for s in said)  # no capture yet: the reference it was checked against
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
    kept = _llama_kept([96, 112])
    ids = torch.randint(0, 100, (2, 7))
    module, said = _apply_quietly(model, kept, ids)
    assert module.config.intermediate_size == 128
    assert [s for s in said if "config keeps its dense widths (layers differ in intermediate_size (96, 112))" in s]
    with torch.no_grad():
        assert torch.allclose(module(ids).logits, masked_model(model, kept)(ids).logits, atol=1e-5)
    module.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        type(model).from_pretrained(tmp_path)  # refused, not loaded into the dense shapes


def _bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, vocab_size=100, max_position_embeddings=32)
    return transformers.BertModel(config).eval()


def _bert_kept(heads: bool) -> dict[str, dict[int, list[int]]]:
    kept: dict[str, dict[int, list[int]]] = {}
    units, dims = list(range(0, 128, 2)), list(range(16, 48))  # half the MLP; heads 1 and 2
    for i in range(2):
        p = f"encoder.layer.{i}."
        kept |= {p + "intermediate.dense.weight": {0: units}, p + "intermediate.dense.bias": {0: units},
                 p + "output.dense.weight": {1: units}}
        if heads:
            for n in ("query", "key", "value"):
                kept |= {p + f"attention.self.{n}.weight": {0: dims}, p + f"attention.self.{n}.bias": {0: dims}}
            kept[p + "attention.output.dense.weight"] = {1: dims}
    return kept


def test_bert_mlp_round_trips_and_heads_keep_the_config(tmp_path: Path) -> None:
    model, ids = _bert(), torch.randint(0, 100, (2, 7))
    module, said = _apply_quietly(model, _bert_kept(heads=False), ids)
    assert module.config.intermediate_size == 64 and not [s for s in said if "config" in s]
    module.save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.allclose(type(model).from_pretrained(tmp_path).eval()(ids).last_hidden_state,
                              module(ids).last_hidden_state, atol=1e-6)
    kept = _bert_kept(heads=True)
    module, said = _apply_quietly(model, kept, ids)
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
