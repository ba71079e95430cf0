"""remove-unused-paths: zeroed channels disappear, exactly those, and the output does not change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import models_zoo
from graphprune.passes import run_pipeline
from graphprune.state import CompileState
from graphprune.testing import masked_model, relative_error
from passes import AnalyzeChannels, Canonicalize, Trace
from passes.unused_paths import purify_to_fixed_point
from tests.conftest import sweep_mode
from tests.helpers import calibrate, make_nontrivial

pytestmark = pytest.mark.usefixtures("single_thread")


def analysed(model: nn.Module, inputs: tuple, masks: dict | None = None) -> CompileState:
    state = CompileState("m", model, inputs, masks=masks or {})
    return run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])


def members_without(state: CompileState, labels: np.ndarray) -> dict:
    """kept (fqn -> dim -> indices) when exactly ``labels`` are removed."""
    kept = {}
    for (fqn, dim), m in state.analysis.table.members.items():
        mask = ~np.isin(state.channels.labels[m.ids], labels)
        if not mask.all():
            kept.setdefault(fqn, {})[dim] = np.flatnonzero(mask).tolist()
    return kept


def random_channels(state: CompileState, rng: np.random.Generator, frozen: bool = False) -> np.ndarray:
    """Labels of a random subset of channels in a random subset of groups, never a member's last one.
    ``frozen=True`` picks among the frozen channels instead (they must survive)."""
    chosen = []
    for g in state.channels.groups:
        ok = ~g.prunable if frozen else g.prunable & ~g.inexact
        if ok.sum() < 2 or rng.random() < 0.4:
            continue
        sel = rng.choice(np.flatnonzero(ok), max(1, int(ok.sum()) // 3), replace=False)
        left = np.ones(g.size, dtype=bool)
        left[sel] = False
        if all(left[m.channel].any() for m in g.members):
            chosen.extend(g.labels[sel].tolist())
    return np.asarray(chosen, dtype=np.int64)


def role(model: nn.Module, fqn: str, dim: int) -> str:
    """Whether a member slice produces its channel (filter rows, biases, norms, loose parameters) or
    consumes it (input columns of a conv/linear)."""
    path, _, attr = fqn.rpartition(".")
    m = model.get_submodule(path) if path else model
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and attr == "weight" and dim == 1:
        return "consumer"
    return "producer"


def check_lossless(model: nn.Module, inputs: tuple, seed: int, part: str, only: set[str] | None = None) -> None:
    """Zero random channels (every member slice, or only the producers' / only the consumers'), run
    unused-path removal to a fixed point: output unchanged, exactly those channels gone. ``only``:
    the user model's tensors (canonicalisation may add constants of its own that carry channels)."""
    model = calibrate(make_nontrivial(model.eval()), inputs)
    state = analysed(model, inputs)
    rng = np.random.default_rng(seed)
    dead, frozen = random_channels(state, rng), random_channels(state, rng, frozen=True)
    assert len(dead), "nothing zeroed: test is vacuous"
    expected = members_without(state, dead)
    zeroing = members_without(state, np.concatenate([dead, frozen]))
    zeroing = {f: {d: ix for d, ix in dims.items() if part == "all" or role(model, f, d) == part}
               for f, dims in zeroing.items()}
    zeroed = masked_model(model, {f: dims for f, dims in zeroing.items() if dims and (only is None or f in only)})
    pruned = purify_to_fixed_point(analysed(zeroed, inputs))
    with torch.no_grad():
        want, got = zeroed(*inputs), pruned.gm(*inputs)
    assert float(want.std()) > 0
    assert relative_error(got, want) <= 1e-5
    assert pruned.kept == expected
    assert pruned.artifacts["unused-paths"]["fixed_point"]


@pytest.mark.parametrize("name,part", [("resnet20", "producer"), ("vgg11_bn", "all"), ("densenet_tiny", "producer"),
                                       ("mobilenet_tiny", "consumer"), ("shufflenet_tiny", "all"),
                                       ("resnet20", "consumer")])
def test_zoo_zeroed_channels_are_removed_exactly(name, part):
    model, inputs = models_zoo.load(f"zoo:{name}")
    check_lossless(model, inputs, seed=len(name), part=part)


SWEEP = ["torchvision:resnet50", "torchvision:mobilenet_v3_large", "torchvision:efficientnet_b0",
         "torchvision:regnet_y_400mf", "torchvision:convnext_tiny", "torchvision:swin_t", "torchvision:vit_b_16",
         "torchvision:densenet121", "torchvision:inception_v3", "torchvision:googlenet",
         "torchvision:resnext50_32x4d", "torchvision:mnasnet1_0", "torchvision:shufflenet_v2_x1_0",
         "torchvision:squeezenet1_1", "torchvision:alexnet", "torchvision:vgg11_bn", "torchvision:maxvit_t",
         "timm:efficientnet_b0", "timm:convnext_atto", "timm:mobilevitv2_050", "timm:resnest14d",
         "timm:regnetz_b16", "timm:cspresnet50", "timm:dla34", "timm:ghostnet_100", "timm:repvgg_a0",
         "timm:hrnet_w18_small", "timm:poolformer_s12"]
SIZES = {"torchvision:vit_b_16": 224, "torchvision:maxvit_t": 224, "torchvision:inception_v3": 96}


@pytest.mark.slow
@pytest.mark.parametrize("spec", SWEEP if sweep_mode() == "full" else ["torchvision:mobilenet_v3_small"])
@pytest.mark.parametrize("part", ["all", "producer"])
def test_sweep_zeroed_channels_are_removed_exactly(spec, part):
    """Transformers too: with every member zeroed (or only the producers) the head dims, MLP widths
    and embedding channels are found dead through attention, einsum and LayerNorm-free paths."""
    pytest.importorskip(spec.partition(":")[0])
    model, inputs = models_zoo.load(spec, input_size=SIZES.get(spec, 64))
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    check_lossless(model, inputs, seed=5, part=part, only=names)


@pytest.mark.parametrize("name,part", [("squeezenet1_0", "all"), ("shufflenet_v2_x0_5", "producer"),
                                       ("mnasnet0_5", "all"), ("regnet_x_400mf", "consumer")])
def test_torchvision_zeroed_channels_are_removed_exactly(name, part):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    check_lossless(model, (torch.randn(1, 3, 64, 64),), seed=3, part=part)


class Chain(nn.Module):
    """conv-bn-act x3, pool, linear; ``act`` is the activation between the stages."""

    def __init__(self, act: type[nn.Module] = nn.ReLU, widths: tuple[int, ...] = (8, 8, 8)) -> None:
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), act()]
            cin = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def chain(act: type[nn.Module] = nn.ReLU) -> tuple[nn.Module, tuple]:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    return calibrate(Chain(act), (x,)), (x,)


def removed(state: CompileState, fqn: str, dim: int = 0) -> set[int]:
    size = dict(state.model.named_parameters())[fqn].shape[dim]
    return set(range(size)) - set(state.kept.get(fqn, {}).get(dim, range(size)))


def prune(model: nn.Module, inputs: tuple, masks: dict | None = None, transitive: bool = True) -> CompileState:
    state = purify_to_fixed_point(analysed(model, inputs, masks), transitive=transitive)
    with torch.no_grad():
        want, got = model(*inputs), state.gm(*inputs)
    assert float(want.std()) > 0 and relative_error(got, want) <= 1e-5
    return state


def test_zero_filter_then_bn_shift_is_not_dead_until_the_shift_is_zero():
    model, x = chain()
    conv, bn = model.body[0], model.body[1]
    with torch.no_grad():
        conv.weight[2] = 0
        conv.bias[2] = 0
    assert removed(prune(model, x), "body.0.weight") == set()  # BN(0) = beta - mean * gamma / std != 0
    with torch.no_grad():  # choose beta so that BN maps zero to zero (up to rounding)
        bn.bias[2] = bn.running_mean[2] * bn.weight[2] / torch.sqrt(bn.running_var[2] + bn.eps)
    assert removed(prune(model, x), "body.0.weight") == {2}


def test_zero_preserving_activation_only():
    for act, expect in ((nn.ReLU, {4}), (nn.Hardswish, {4}), (nn.Sigmoid, set())):
        model, x = chain(act)
        with torch.no_grad():
            model.body[1].weight[4] = 0
            model.body[1].bias[4] = 0
        assert removed(prune(model, x), "body.0.weight") == expect, act  # sigmoid(0) = 0.5


def test_masked_input_column_removes_the_channel():
    model, x = chain()
    mask = torch.ones_like(model.body[3].weight, dtype=torch.bool)
    mask[:, 5] = False  # shape-wise sparsity that kills input channel 5 of the second conv
    mask[1, 2, 0, 0] = False  # irregular sparsity elsewhere: no channel dies
    state = purify_to_fixed_point(analysed(model, x, {"body.3.weight": mask}))
    assert removed(state, "body.0.weight") == {5} and removed(state, "body.3.weight", 1) == {5}
    conv2 = state.gm.get_submodule("body.3")
    assert state.masks["body.3.weight"].shape == conv2.weight.shape
    masked = masked_model(model, {})
    with torch.no_grad():
        masked.body[3].weight.mul_(mask)
        conv2.weight.mul_(state.masks["body.3.weight"])
        assert relative_error(state.gm(*x), masked(*x)) <= 1e-5


def test_fixed_point_in_several_rounds_when_one_hop_at_a_time():
    """fc ignores conv3 channels {1, 6}; conv3 reads conv2 channel 3 only into those rows; conv2
    reads conv1 channel 0 only into row 3: each removal exposes the next."""
    model, x = chain()
    with torch.no_grad():
        model.head.weight[:, [1, 6]] = 0
        keep3 = [r for r in range(8) if r not in (1, 6)]
        model.body[6].weight[keep3, 3] = 0
        model.body[3].weight[[r for r in range(8) if r != 3], 0] = 0
    local = prune(model, x, transitive=False)
    assert local.artifacts["unused-paths"]["rounds"] == [2, 1, 1, 0]
    full = prune(model, x)
    assert full.artifacts["unused-paths"]["rounds"] == [4, 0]
    assert full.kept == local.kept
    assert removed(full, "body.6.weight") == {1, 6} and removed(full, "body.3.weight") == {3}
    assert removed(full, "body.0.weight") == {0}


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x) + self.branch(self.stem(x) * 1.0))
        return self.head(y)  # the head's output reaches the model output: frozen


def test_residual_channel_dead_on_one_side_is_kept_and_frozen_never_removed():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = calibrate(Residual(), (x,))
    with torch.no_grad():
        for bn in (model.branch[4],):  # channel 3 dies in the branch only
            bn.weight[3], bn.bias[3] = 0, 0
        model.head.weight[2] = 0  # an output channel: frozen, never removed
        model.head.bias[2] = 0
        model.branch[1].weight[6], model.branch[1].bias[6] = 0, 0  # inner branch channel: dead
    state = prune(model, (x,))
    assert removed(state, "branch.3.weight") == set() and removed(state, "head.weight") == set()
    assert removed(state, "branch.0.weight") == {6}
    with torch.no_grad():  # dead on both sides of the add (stem too): removed everywhere
        model.stem[1].weight[3], model.stem[1].bias[3] = 0, 0
    state = prune(model, (x,))
    assert removed(state, "stem.0.weight") == {3} and removed(state, "head.weight", 1) == {3}


def test_zero_factor_kills_a_channel_whatever_the_other_factor():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1)
            self.gamma = nn.Parameter(torch.tensor([1.0, 0.0, 2.0, 0.0, 1.0, 3.0]).view(1, 6, 1, 1))

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) * self.gamma)

    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    state = prune(Scaled(), (x,))
    assert removed(state, "a.weight") == {1, 3} and removed(state, "gamma", 1) == {1, 3}


def test_user_model_untouched_and_frozen_only_consumer_dead_kept():
    class TwoOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1)

        def forward(self, x):
            h = self.a(x)
            return h, self.b(h)  # h reaches the output: frozen even where b ignores it

    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    model = TwoOut()
    with torch.no_grad():
        model.b.weight[:, 2] = 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = purify_to_fixed_point(analysed(model, (x,)))
    assert state.kept == {} and state.artifacts["unused-paths"]["rounds"] == [0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class Attention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.need_weights = need_weights
        self.inp, self.out = nn.Linear(8, 16), nn.Linear(16, 3)
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(self.mha(h, h, h, need_weights=self.need_weights)[0].mean(1))


@pytest.mark.parametrize("need_weights", [False, True])  # scaled_dot_product_attention / matmul-softmax-matmul
def test_attention_head_dims(need_weights):
    """Head dim j is one channel in both heads (rows j, j + 8 of q, k; v's own). q.k contracts it: a
    zero q channel makes k's unread. q rows 1, 9, 3, 11 and v rows 33, 41, 37, 45 are zeroed, and
    q row 2 alone (its twin 10 in the other head is live)."""
    torch.manual_seed(0)
    model, x = Attention(need_weights).eval(), torch.randn(2, 5, 8)
    with torch.no_grad():
        for r in (1, 9, 3, 11, 33, 41, 37, 45, 2):
            model.mha.in_proj_weight[r], model.mha.in_proj_bias[r] = 0, 0
    state = prune(model, (x,))
    assert removed(state, "mha.in_proj_weight") == {1, 9, 17, 25, 3, 11, 19, 27, 33, 41, 37, 45}
    assert removed(state, "mha.out_proj.weight", 1) == {1, 9, 5, 13}


def test_functional_batch_norm_and_einsum():
    """Norm as ``F.batch_norm`` over parameters (how timm's BatchNormAct traces), then an einsum
    projection: a zero filter whose norm maps zero to zero is dead through both."""

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.w, self.b = nn.Parameter(torch.rand(6) + 0.5), nn.Parameter(torch.randn(6))
            self.register_buffer("mean", torch.randn(6))
            self.register_buffer("var", torch.rand(6) + 0.5)
            self.proj = nn.Parameter(torch.randn(4, 6))

        def forward(self, x):
            h = torch.nn.functional.batch_norm(self.conv(x), self.mean, self.var, self.w, self.b, False, 0.1, 1e-5)
            return torch.einsum("bchw,dc->bdhw", torch.relu(h), self.proj).mean((2, 3))

    torch.manual_seed(0)
    model, x = Functional().eval(), torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        model.conv.weight[[1, 4]], model.conv.bias[[1, 4]] = 0, 0
        model.b[1] = model.mean[1] * model.w[1] / torch.sqrt(model.var[1] + 1e-5)  # BN(0) = 0 for channel 1 only
    state = prune(model, (x,))
    assert removed(state, "conv.weight") == {1} and removed(state, "proj", 1) == {1}


def test_masks_installed_by_apply_masks_kill_channels():
    """Irregular masks from ``apply-masks`` (masked conv twins) whose scores make a whole input column
    and a whole filter lose: both channels die and are removed; the mask buffers are sliced."""
    from passes import ApplyMasks

    model, x = chain()
    state = analysed(model, x)
    scores = {n: torch.rand_like(p) + 1 for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1}
    scores["body.3.weight"][:, 2] = 0  # column 2 of conv2
    scores["body.6.weight"][5] = 0  # filter 5 of conv3 (its BN then maps zero to beta: not dead by itself)
    scores["head.weight"][:, 5] = 0  # ... but the head ignores channel 5 too
    state = state.with_(weight_scores={"test": scores}, facts=state.facts | {"weight-scores:test"})
    state = run_pipeline(state, [ApplyMasks(criterion="test", density=0.8, scope="local")])
    masks = dict(state.masks)
    state = purify_to_fixed_point(state)
    assert removed(state, "body.0.weight") == {2} and removed(state, "body.6.weight") == {5}
    conv2 = state.gm.get_submodule("body.3")
    assert conv2.weight_mask.shape == conv2.weight.shape == state.masks["body.3.weight"].shape
    masked = masked_model(model, {})
    with torch.no_grad():
        for name, mask in masks.items():
            masked.get_parameter(name).mul_(mask)
        assert relative_error(state.gm(*x), masked(*x)) <= 1e-5
