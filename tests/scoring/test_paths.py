"""SynFlow and PX: conservation, positivity, closed forms, no layer collapse, and the documented
treatment of BatchNorm (folded affine map), biases (zero in the copies) and smooth gates."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from graphprune.scoring import (
    PathScorer,
    global_masks,
    iterate,
    magnitude_scores,
    path_count,
    px_scores,
    synflow_scores,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def conv_net(act: type = nn.ReLU, bn: bool = True, bias: bool = False, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1, bias=bias)]
    layers += [nn.BatchNorm2d(8)] if bn else []
    layers += [act(), nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=bias)]
    layers += [nn.BatchNorm2d(16)] if bn else []
    layers += [act(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10, bias=bias)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def images(n: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def layer_sums(scores: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack([s.sum() for s in scores.values()])


@pytest.mark.parametrize("criterion", ["synflow", "px"])
def test_conservation_every_layer_sums_to_the_same_value(criterion):
    net = conv_net(bias=True)  # biases are zero in the copies, so conservation still holds
    scores = synflow_scores(net, (1, 3, 8, 8)) if criterion == "synflow" else px_scores(net, images())
    sums = layer_sums(scores)
    torch.testing.assert_close(sums, sums[0].expand_as(sums), rtol=1e-9, atol=0)
    assert all(bool((s >= 0).all()) for s in scores.values())


def test_px_scores_are_nonnegative_and_finite_on_a_residual_zoo_model():
    import models_zoo

    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    scores = px_scores(model, torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    assert bool(torch.isfinite(flat).all()) and bool((flat >= 0).all()) and float(flat.max()) > 0


def test_px_matches_closed_form_on_one_hidden_layer():
    """R = sum_k Z1_k * z2_k with z2_k = sum_{h,i} W2[k,h]^2 W1[h,i]^2 and, weights being 1 in z1,
    Z1_k = sum_n sum_{h,i} gate[n,h] x[n,i]^2 for every k. So dR/dW1[h,i]^2 = sum_k Z1 W2[k,h]^2 and
    dR/dW2[k,h]^2 = Z1 sum_i W1[h,i]^2 (up to the common normalisation of z1)."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randn(9, 4, generator=torch.Generator().manual_seed(5))
    got = px_scores(net, x)
    w1, w2 = net[0].weight.detach().double(), net[2].weight.detach().double()
    xd = x.double()
    gates = (xd @ w1.T + net[0].bias.detach().double() > 0).double()
    z1 = (gates.sum(1) * (xd ** 2).sum(1)).sum()  # the same for every output k
    g1 = z1 * (w2 ** 2).sum(0)[:, None].expand_as(w1)
    g2 = z1 * (w1 ** 2).sum(1)[None, :].expand_as(w2)
    want1, want2 = g1 * w1 ** 2, g2 * w2 ** 2
    scale = want1.sum() / got["0.weight"].sum()  # z1 is normalised by its max: compare up to one factor
    torch.testing.assert_close(got["0.weight"] * scale, want1)
    torch.testing.assert_close(got["2.weight"] * scale, want2)


def test_synflow_matches_closed_form_on_one_hidden_layer():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    got = synflow_scores(net, (1, 4))
    a1, a2 = net[0].weight.detach().double().abs(), net[2].weight.detach().double().abs()
    torch.testing.assert_close(got["0.weight"], a1 * a2.sum(0)[:, None])
    torch.testing.assert_close(got["2.weight"], a2 * a1.sum(1)[None, :])


def folded(net: nn.Sequential) -> nn.Sequential:
    """The same function with every BatchNorm folded into the conv before it (scale into the weight,
    shift into the bias)."""
    out: list[nn.Module] = []
    mods = list(net)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            bn = mods[i + 1]
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=True)
            with torch.no_grad():
                conv.weight.copy_(m.weight * s[:, None, None, None])
                bias = m.bias if m.bias is not None else torch.zeros_like(s)
                conv.bias.copy_((bias - bn.running_mean) * s + bn.bias)
            out.append(conv)
            i += 2
        else:
            out.append(m)
            i += 1
    return nn.Sequential(*out).eval()


@pytest.mark.parametrize("criterion", ["synflow", "px"])
def test_batchnorm_is_a_folded_affine_map(criterion):
    """Scoring a conv-BN pair equals scoring the conv with the BN folded in: the BN scale acts as
    part of every weight of its channel, its shift as a bias (zero in the copies, kept for gates)."""
    net = conv_net(bias=True)
    fold = folded(net)
    x = images()
    torch.testing.assert_close(fold(x), net(x), rtol=1e-4, atol=1e-5)
    if criterion == "synflow":
        a, b = synflow_scores(net, (1, 3, 8, 8)), synflow_scores(fold, (1, 3, 8, 8))
    else:
        a, b = px_scores(net, x), px_scores(fold, x)
    for (na, sa), sb in zip(a.items(), b.values()):
        torch.testing.assert_close(sa / sa.sum(), sb / sb.sum(), rtol=1e-5, atol=1e-12, msg=na)


def test_biases_do_not_enter_synflow():
    net = conv_net(bias=True, seed=2)
    assert all(bool(m.bias.abs().sum() > 0) for m in net if isinstance(m, (nn.Conv2d, nn.Linear)))
    zeroed = copy.deepcopy(net)
    with torch.no_grad():
        for m in zeroed:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.zero_()
    a, b = synflow_scores(net, (1, 3, 8, 8)), synflow_scores(zeroed, (1, 3, 8, 8))
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_smooth_gates_are_treated_as_relu_gates():
    """GELU/SiLU gates are (pre-activation > 0): with one hidden layer the pre-activations coincide, so
    PX scores equal the ReLU network's; SynFlow linearises every gate to the identity at any depth."""
    relu = conv_net(nn.ReLU)
    for act in (nn.GELU, nn.SiLU):
        other = conv_net(act)
        assert all(torch.equal(a, b) for a, b in zip(relu.state_dict().values(), other.state_dict().values()))
        sr, so = synflow_scores(relu, (1, 3, 8, 8)), synflow_scores(other, (1, 3, 8, 8))
        assert all(torch.equal(sr[n], so[n]) for n in sr)
    torch.manual_seed(7)
    shallow = [nn.Sequential(nn.Linear(5, 8), act(), nn.Linear(8, 3)).eval() for act in (nn.ReLU, nn.GELU)]
    shallow[1].load_state_dict(shallow[0].state_dict())
    xs = torch.randn(7, 5, generator=torch.Generator().manual_seed(8))
    pr, pg = px_scores(shallow[0], xs), px_scores(shallow[1], xs)
    assert all(torch.allclose(pr[n], pg[n]) for n in pr)


def paths_exist(net: nn.Module, masks: dict[str, torch.Tensor], shape: tuple[int, ...]) -> bool:
    """Whether any input->output path survives the masks (``path_count`` > 0)."""
    return path_count(net, masks, shape) > 0


def test_path_count_counts_paths_of_a_tiny_mlp():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    masks = {"0.weight": torch.tensor([[1, 1, 0], [0, 0, 1]], dtype=torch.bool),
             "2.weight": torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)}
    assert path_count(net, masks, (1, 3)) == 2 + (2 + 1)  # output 0 via hidden 0; output 1 via both
    masks["2.weight"][:, 0] = False
    masks["0.weight"][1] = False
    assert path_count(net, masks, (1, 3)) == 0


def wide_then_narrow(seed: int = 0) -> nn.Sequential:
    """Layers of very different sizes (a 64x576 conv next to a 10x32 linear): magnitude-style global
    thresholds empty the small layers first."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Conv2d(64, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()


@pytest.mark.parametrize("criterion", ["synflow", "px"])
def test_no_layer_collapse_at_99_percent_sparsity(criterion):
    net = wide_then_narrow()
    x = images(20)
    scorer = PathScorer(net)
    score = (lambda m: scorer.synflow(m, (1, 3, 8, 8))) if criterion == "synflow" else (lambda m: scorer.px(m, x))
    scores, masks = iterate(score, 0.01, rounds=20)
    kept = {n: int(m.sum()) for n, m in masks.items()}
    assert sum(kept.values()) == round(0.01 * sum(m.numel() for m in masks.values()))
    assert all(k > 0 for k in kept.values()), kept
    assert paths_exist(net, masks, (1, 3, 8, 8))
    again = global_masks(scores, 0.01)  # the returned scores reproduce the iterative masks
    assert all(torch.equal(again[n], masks[n]) for n in masks)


@pytest.mark.parametrize("criterion", ["synflow", "px"])
def test_residual_network_stays_connected_at_99_percent_sparsity(criterion):
    """In a ResNet a whole branch may be emptied (the skip path carries the signal: see docs/pai.md),
    but the output never disconnects from the input."""
    from models_zoo.small import resnet8

    net, _ = resnet8(8)
    scorer = PathScorer(net)
    x = images(20)
    score = (lambda m: scorer.synflow(m, (1, 3, 8, 8))) if criterion == "synflow" else (lambda m: scorer.px(m, x))
    _, masks = iterate(score, 0.01, rounds=10)
    assert paths_exist(net, masks, (1, 3, 8, 8))
    assert int(masks["fc.weight"].sum()) > 0 and int(masks["stem.0.0.weight"].sum()) > 0


def test_the_collapse_check_can_fail():
    """Global magnitude pruning empties the wide middle conv of the same network at 1 %: the
    assertion above is not vacuous."""
    net = wide_then_narrow()
    masks = global_masks(magnitude_scores(net), 0.01)
    assert min(int(m.sum()) for m in masks.values()) == 0
    assert not paths_exist(net, masks, (1, 3, 8, 8))


def test_path_criteria_never_mutate_the_model():
    net = conv_net(bias=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    px_scores(net, images(), density=0.1, rounds=3)
    synflow_scores(net, (1, 3, 8, 8), density=0.1, rounds=3)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear))
               for m in net)
