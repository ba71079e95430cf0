"""``graphprune.apply(model, report, form="module")`` and ``Result.as_module()``: the user's own class back,
its layers resized and their width attributes (and a Hugging Face config) agreeing with the tensors, with
the pruned graph's output (or, where graphprune cannot capture the model yet, the masked dense model's);
what no module can carry is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import graphprune
import models_zoo
from graphprune.errors import InputError
from graphprune.ops.attention import head_widths

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
    result = graphprune.compile(model, x, statistics="renormalize")  # LayerNorms as the user's class computes them
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


def test_statistics_over_the_original_width_are_refused_for_the_module_form() -> None:
    """statistics = "exact" (the default) keeps a pruned LayerNorm's statistics over the dense width, which
    timm's own LayerNorm cannot compute: the module form says so instead of returning a different model."""
    model = _deit()
    result = graphprune.compile(model, torch.randn(2, 3, 32, 32))
    assert result.report.artifacts["statistics"]["full_width"]
    with pytest.raises(InputError, match=r"^apply: \d+ normalisation statistics .* statistics='renormalize'"):
        result.as_module()
    with pytest.raises(InputError, match="statistics='renormalize'"):
        graphprune.apply(_deit(), result.report.to_dict(), torch.randn(2, 3, 32, 32), form="module")


def test_timm_attention_widths_follow_the_qkv() -> None:
    model = _deit()
    result = graphprune.compile(model, torch.randn(2, 3, 32, 32), statistics="renormalize")
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


class _RMSBlocks(nn.Module):
    """A residual stream normalised by ``nn.RMSNorm`` (eps unset: the dtype's), pruned through its width."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.norm = nn.Linear(6, 16), nn.RMSNorm(16)
        self.mlp, self.head = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16)), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.mlp(self.norm(h))
        return self.head(self.norm(h))


def test_an_rms_norm_folds_its_full_width_statistic_into_its_own_weight_and_eps() -> None:
    """Before, statistics = "exact" (the default) refused the module form for any statistic kept over the
    original width; an RMSNorm carries it exactly as weight / sqrt(r) and eps / r."""
    torch.manual_seed(0)
    model, x = _RMSBlocks().eval(), torch.randn(4, 5, 6)
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
    result = graphprune.compile(model, x, sparsity=0.5)
    assert result.report.artifacts["statistics"]["full_width"] and result.report.inexact == []
    module = result.as_module()
    width = module.norm.weight.numel()
    assert type(module) is _RMSBlocks and width < 16
    assert module.norm.eps == pytest.approx(torch.finfo(torch.float32).eps * 16 / width)
    with torch.no_grad():
        assert torch.allclose(module(x), result.module(x), atol=1e-5)
    again = graphprune.apply(_RMSBlocks(), result.report.to_dict(), x, form="module")
    assert again.norm.weight.numel() == width


def test_llama_pruned_through_its_hidden_width_comes_back_as_llama_exactly(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    model, inputs = models_zoo.load("hf:llama")
    plan = {"prune": [{"select": ["*.q_proj", "*.k_proj", "*.v_proj"], "structure": "heads", "sparsity": 0.5},
                      {"select": "*.mlp.gate_proj", "sparsity": 0.5}, {"select": "*", "sparsity": 0.5}]}
    result = graphprune.compile(model, inputs, plan)  # heads, MLP and the hidden width; statistics exact
    assert result.report.artifacts["statistics"]["full_width"] and result.report.inexact == []
    llama = result.as_module()
    assert type(llama) is type(model) and llama.model.norm.weight.numel() < model.model.norm.weight.numel()
    with torch.no_grad():
        got, want = llama(*inputs, use_cache=False).logits, result.module(*inputs).logits
    assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())
    assert llama.config.hidden_size == llama.model.norm.weight.numel()
    assert llama.config.rms_norm_eps == llama.model.norm.variance_epsilon > model.config.rms_norm_eps
    llama.save_pretrained(tmp_path)  # the folded eps is in the config: a reload computes the same logits
    again = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(again(*inputs, use_cache=False).logits, llama(*inputs, use_cache=False).logits)


def test_llama_with_a_shrunk_head_dim_comes_back_and_its_config_stays_dense() -> None:
    """Before, the module form refused LlamaRotaryEmbedding (a sliced ``inv_freq`` and no declaration). Its
    kept frequencies are not what a config with the new head_dim would compute, and ``from_pretrained``
    recomputes that non-persistent table: so the copy runs exactly, and the config keeps its dense values
    with a warning (``from_pretrained`` then refuses the shapes instead of loading other frequencies)."""
    pytest.importorskip("transformers")
    model, inputs = models_zoo.load("hf:llama")
    result = graphprune.compile(model, inputs)  # every group: head_dim shrinks with the rotary table
    assert len(result.report.kept["model.rotary_emb.inv_freq"][0]) < model.model.rotary_emb.inv_freq.numel()
    with pytest.warns(UserWarning, match="inv_freq is sliced, and from_pretrained recomputes it"):
        llama = result.as_module()
    assert llama.model.layers[0].self_attn.head_dim < model.model.layers[0].self_attn.head_dim
    assert llama.config.head_dim == model.config.head_dim
    with torch.no_grad():
        got, want = llama(*inputs, use_cache=False).logits, result.module(*inputs).logits
    assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())
    assert llama.generate(inputs[0][:1, :4], max_new_tokens=3, do_sample=False).shape == (1, 7)
