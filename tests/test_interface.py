"""The model's interface survives compile: output structures and leaf shapes, tied parameters, unused
state, keyword and constant inputs, degenerate models, and an ``inexact`` list that is true."""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch
from torch import nn

import graphprune
from graphprune.errors import InputError
from graphprune.testing import masked_equivalence_error

Heads = collections.namedtuple("Heads", ["logits", "features"])


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    features: torch.Tensor


class TwoHeads(nn.Module):
    """A 10-class head and a 16-channel feature map, returned in the structure ``kind`` names."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.mid = nn.Conv2d(32, 16, 3, padding=1)
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x: torch.Tensor):
        features = torch.relu(self.mid(torch.relu(self.stem(x))))
        logits = self.head(features)
        if self.kind == "dict":
            return {"out": logits, "aux": features}
        if self.kind == "ordered":
            return collections.OrderedDict([("out", logits), ("aux", features)])
        if self.kind == "int-keys":
            return collections.OrderedDict([(0, logits), (1, features)])
        if self.kind == "namedtuple":
            return Heads(logits, features)
        if self.kind == "dataclass":
            return Output(logits, features)
        return [{"out": [logits, None]}, (features, 3)]  # nested, with non-tensor leaves


@pytest.mark.parametrize("kind", ["dict", "ordered", "int-keys", "namedtuple", "dataclass", "nested"])
def test_every_output_leaf_keeps_its_shape_and_the_structure_its_type(kind: str) -> None:
    torch.manual_seed(0)
    model, x = TwoHeads(kind).eval(), torch.randn(1, 3, 8, 8)
    result = graphprune.compile(model, (x,), sparsity=0.5)
    with torch.no_grad():
        dense, out = model(x), result.module(x)
    assert type(out) is type(dense)
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5  # checks shapes too
    assert result.report.kept["stem.weight"][0] and len(result.report.kept["stem.weight"][0]) == 16
    assert 0 not in result.report.kept["mid.weight"] and "head.weight" not in result.report.kept  # outputs
    assert not result.report.unknown_ops


class TiedLM(nn.Module):
    """GPT-2's tie: the output head is the token embedding (vocabulary x width)."""

    def __init__(self, vocab: int = 50, width: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.wte(ids)
        h = h + self.proj(torch.relu(self.fc(h)))
        return self.head(h)


def test_a_tied_head_stays_one_tensor_and_the_model_shrinks() -> None:
    torch.manual_seed(0)
    model, ids = TiedLM().eval(), torch.randint(0, 50, (2, 7))
    result = graphprune.compile(model, (ids,), sparsity=0.5)
    pruned, report = result.module, result.report
    assert pruned.head.weight is pruned.wte.weight
    assert report.tied == [["wte.weight", "head.weight"]]
    assert report.params_after < report.params_before
    assert report.params_after == sum(p.numel() for p in pruned.parameters())
    assert "head.weight" not in report.kept  # one name per tensor: the canonical one
    assert masked_equivalence_error(model, pruned, report.kept, (ids,)) < 1e-5
    assert set(pruned.state_dict()) == set(model.state_dict())


class SharedConv(nn.Module):
    """One 8x8 conv applied twice: its output channels feed its own input columns."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.again = nn.Conv2d(8, 8, 3, padding=1)
        self.again.weight = self.shared.weight
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.again(torch.relu(self.shared(x))))
        return self.head(x.mean((2, 3)))


def test_a_weight_shared_by_two_convs_is_pruned_alike_in_both() -> None:
    torch.manual_seed(0)
    model, x = SharedConv().eval(), torch.randn(1, 3, 8, 8)
    result = graphprune.compile(model, (x,), sparsity=0.5)
    pruned = result.module
    assert pruned.again.weight is pruned.shared.weight
    assert tuple(pruned.shared.weight.shape) == (4, 4, 3, 3)
    assert pruned.again.in_channels == pruned.again.out_channels == 4
    assert masked_equivalence_error(model, pruned, result.report.kept, (x,)) < 1e-5
    assert result.report.params_after < result.report.params_before


class WithUnusedState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
        self.register_buffer("running_stat", torch.arange(4.0))
        self.register_buffer("scratch", torch.ones(2), persistent=False)
        self.calibration = nn.Module()
        self.calibration.scale = nn.Parameter(torch.full((3,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_state_forward_never_reads_is_kept() -> None:
    model, x = WithUnusedState().eval(), torch.randn(1, 3, 8, 8)
    result = graphprune.compile(model, (x,), sparsity=0.5)
    pruned = result.module
    assert set(pruned.state_dict()) == set(model.state_dict())
    assert torch.equal(pruned.running_stat, model.running_stat)
    assert torch.equal(pruned.calibration.scale, model.calibration.scale)
    assert "scratch" not in pruned.state_dict() and torch.equal(pruned.scratch, model.scratch)
    assert pruned.running_stat.data_ptr() != model.running_stat.data_ptr()  # a copy, not the user's
    assert sorted(result.report.artifacts["trace"]["unused_state"]) == ["calibration.scale", "running_stat",
                                                                        "scratch"]


class Keywords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(3, 8, 1)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x, flag: bool = True, mask=None, scale: float = 1.0):
        y = torch.relu(self.conv(x))
        if mask is not None:
            y = y * torch.sigmoid(self.gate(mask))
        if flag:
            y = y * scale
        return self.out(y)


def test_keyword_and_constant_example_inputs() -> None:
    torch.manual_seed(0)
    model, x, mask = Keywords().eval(), torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    result = graphprune.compile(model, (x, False), kwargs={"mask": mask, "scale": 3.0}, sparsity=0.5)
    assert [n.name for n in result.module.graph.nodes if n.op == "placeholder"] == ["x", "mask"]
    err = masked_equivalence_error(model, result.module, result.report.kept, (x, False),
                                   kwargs={"mask": mask, "scale": 3.0}, pruned_inputs=(x, mask))
    assert err < 1e-5
    assert len(result.report.kept["conv.weight"][0]) == 4


def test_example_inputs_that_do_not_fit_forward_name_the_signature() -> None:
    with pytest.raises(InputError, match=r"Keywords.forward\(x, flag"):
        graphprune.compile(Keywords(), (torch.randn(1, 3, 8, 8),), kwargs={"nope": 1})


def test_a_model_with_nothing_to_prune_says_so() -> None:
    model, x = nn.Sequential(nn.ReLU()), torch.randn(1, 3, 8, 8)
    report = graphprune.compile(model, (x,), sparsity=0.5).report
    assert any(w.startswith("nothing to prune") for w in report.warnings)
    assert report.params_before == 0 and report.params_reduction is None


def test_an_empty_batch_has_no_mac_ratio() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
    report = graphprune.compile(model, (torch.randn(0, 3, 8, 8),), sparsity=0.5).report
    assert report.macs_before == 0 and report.macs_reduction is None
    assert report.to_dict()["macs_reduction"] is None
    assert any("0 MACs" in w for w in report.warnings)


def test_non_finite_weights_are_refused_by_name() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.raises(InputError, match=r"non-finite .* 2\.weight"):
        graphprune.compile(model, (torch.randn(1, 3, 8, 8),))


class ClampedByBuffers(nn.Module):
    """Clipping bounds kept as buffers, infinite where unbounded (timm's Gemma 4 ViT)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1)
        self.register_buffer("low", torch.tensor(float("-inf")))
        self.register_buffer("high", torch.tensor(float("inf")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.clamp(torch.relu(self.a(x)), self.low, self.high))


def test_infinite_buffers_are_allowed_and_nan_buffers_refused() -> None:
    model = ClampedByBuffers()
    result = graphprune.compile(model, (torch.randn(1, 3, 8, 8),), sparsity=0.5)
    assert result.module.a.weight.shape[0] == 4
    model.low.fill_(float("nan"))
    with pytest.raises(InputError, match=r"non-finite .* low"):
        graphprune.compile(model, (torch.randn(1, 3, 8, 8),))


def test_the_finite_check_is_element_wise_where_a_sum_overflows_or_cancels() -> None:
    """The check reads one sum per tensor first: an overflowing sum of finite weights is no refusal,
    +inf and -inf in one buffer (a NaN sum) no NaN, and one infinite weight among finite ones is refused."""
    model = ClampedByBuffers()
    with torch.no_grad():
        model.a.weight.fill_(3e38)  # finite, but the float32 sum overflows
    model.register_buffer("bounds", torch.tensor([float("-inf"), float("inf")]))
    assert graphprune.compile(model, (torch.randn(1, 3, 8, 8),), sparsity=0.5).module.a.weight.shape[0] == 4
    with torch.no_grad():
        model.b.weight[0, 0] = float("inf")
    with pytest.raises(InputError, match=r"non-finite .* b\.weight"):
        graphprune.compile(model, (torch.randn(1, 3, 8, 8),))


class Normalised(nn.Module):
    """A token MLP whose hidden width passes a LayerNorm, and a channel sum (exact under removal)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.norm = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 8)
        self.conv = nn.Conv2d(3, 16, 1)

    def forward(self, tokens: torch.Tensor, image: torch.Tensor):
        total = torch.relu(self.conv(image)).sum(1)
        return self.fc2(self.norm(torch.relu(self.fc1(tokens)))), total


def test_inexact_lists_only_statistics_that_lost_channels() -> None:
    torch.manual_seed(0)
    model, inputs = Normalised().eval(), (torch.randn(1, 5, 8), torch.randn(1, 3, 4, 4))
    loose = graphprune.compile(model, inputs, sparsity=0.5, statistics="renormalize").report
    assert [i["reason"] for i in loose.inexact] == ["LayerNorm/RMSNorm statistics span the channels"]
    assert list(loose.inexact[0]["removed_channels"].values()) == [16]
    exact = graphprune.compile(model, inputs, sparsity=0.5, exact=True)
    assert exact.report.inexact == []
    assert any(f["reason"].startswith("exact:") and "LayerNorm" in f["reason"] for f in exact.report.frozen)
    assert "norm.weight" not in exact.report.kept and len(exact.report.kept["conv.weight"][0]) == 8
    assert masked_equivalence_error(model, exact.module, exact.report.kept, inputs) < 1e-5


@pytest.mark.parametrize("score", ["px", "snip", "grasp", "synflow", "taylor"])
def test_data_driven_scores_read_a_tied_weight_once(score: str) -> None:
    torch.manual_seed(0)
    model, x = SharedConv().eval(), torch.randn(1, 3, 8, 8)
    data = [(torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,)))] * 2
    result = graphprune.compile(model, (x,), sparsity=0.5, score=score, data=data)
    assert result.module.again.weight is result.module.shared.weight
    assert tuple(result.module.shared.weight.shape) == (4, 4, 3, 3)
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5


class DictInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 16, 3, padding=1)
        self.aux = nn.Conv2d(3, 16, 1)
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.out(torch.relu(self.image(batch["image"])) + self.aux(batch["aux"][0]))


def test_an_input_structure_is_an_input() -> None:
    torch.manual_seed(0)
    model = DictInput().eval()
    batch = {"image": torch.randn(1, 3, 8, 8), "aux": [torch.randn(1, 3, 8, 8)]}
    result = graphprune.compile(model, batch, sparsity=0.5)
    assert len(result.report.kept["image.weight"][0]) == 8 and len(result.report.kept["aux.weight"][0]) == 8
    assert masked_equivalence_error(model, result.module, result.report.kept, (batch,)) < 1e-5


class ChannelNorm(nn.Module):
    """A per-position L2 norm over channels, with dim given by position (``vector_norm(x, 2, 1)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor):
        y = torch.relu(self.conv(x))
        return self.head(y), torch.linalg.vector_norm(y, 2, 1)


def test_a_positional_norm_dim_is_read_as_the_dim() -> None:
    torch.manual_seed(0)
    model, x = ChannelNorm().eval(), torch.randn(1, 3, 6, 6)
    result = graphprune.compile(model, (x,), sparsity=0.5)
    assert len(result.report.kept["conv.weight"][0]) == 8 and result.report.inexact == []
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5


def test_hooks_and_buffers_added_to_the_result_stay_off_the_users_model() -> None:
    """Before, copy-on-write copies shared nn.Module's hook tables and non-persistent buffer set with the
    user's modules: a hook registered on the compiled model's layer was added to the user's and fired
    there (the user's model was mutated through the result)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    x = torch.randn(2, 3, 8, 8)
    result = graphprune.compile(model, x, sparsity=0.5)
    layers = dict(result.module.named_modules())
    fired = []
    for path, layer in layers.items():
        if path:
            layer.register_forward_hook(lambda *args, path=path: fired.append(path))
            layer.register_buffer("extra", torch.zeros(1), persistent=False)
    with torch.no_grad():
        model(x)
    assert fired == []
    assert all(not m._forward_hooks and not m._non_persistent_buffers_set for m in model.modules())
