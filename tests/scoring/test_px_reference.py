"""PX as the paper and its reference code compute it: one round of graphprune's PX equals the formula
written out by hand in plain torch on bias- and BatchNorm-free networks (an MLP and a small CNN), with
and without masks; the data copy computes with the keep mask (pruned weights 0) in every round; the
earlier all-ones data copy stays available as an option."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.scoring import PathScorer, iterate, px_scores
from graphprune.scoring import paths as paths_module
from graphprune.scoring.masked import install_masks

pytestmark = pytest.mark.usefixtures("single_thread")

Op = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mlp() -> tuple[nn.Module, list[Op], torch.Tensor]:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 7, bias=False), nn.ReLU(),
                        nn.Linear(7, 4, bias=False)).eval()
    ops: list[Op] = [lambda h, w: h @ w.T] * 3
    return net, ops, torch.randn(10, 6, generator=torch.Generator().manual_seed(2))


def cnn() -> tuple[nn.Module, list[Op], torch.Tensor]:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 4 * 4, 5, bias=False)).eval()
    ops: list[Op] = [lambda h, w: F.conv2d(h, w, padding=1), lambda h, w: F.conv2d(h, w, stride=2, padding=1),
                     lambda h, w: h.flatten(1) @ w.T]
    return net, ops, torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(4))


def hand_px(weights: list[torch.Tensor], masks: list[torch.Tensor], ops: list[Op], x: torch.Tensor,
            masked_data: bool = True) -> list[torch.Tensor]:
    """The PX round written out: gates of the masked network on x; z1 = the gated network with weights
    m (or 1) on x**2; z2 = the linear network with weights (theta*m)**2 on ones; R = sum z1 * z2;
    S = |dR/d(theta**2)| * theta**2. ReLU after every layer but the last."""
    x = x.double()
    theta = [w.detach().double() * m.double() for w, m in zip(weights, masks)]
    gates, h = [], x
    for op, t in zip(ops[:-1], theta[:-1]):
        a = op(h, t)
        gates.append((a > 0).double())
        h = a.relu()
    data = [m.double() if masked_data else torch.ones_like(m, dtype=torch.float64) for m in masks]
    z1 = x ** 2
    for i, (op, d) in enumerate(zip(ops, data)):
        z1 = op(z1, d) * (gates[i] if i < len(gates) else 1)
    squared = [(t * t).requires_grad_() for t in theta]
    z2 = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    for op, p in zip(ops, squared):
        z2 = op(z2, p)
    r = (z1 * z2).sum()
    grads = torch.autograd.grad(r, squared)
    return [g.abs() * p.detach() for g, p in zip(grads, squared)]


def random_masks(net: nn.Module, density: float, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"{name}.weight": torch.rand(m.weight.shape, generator=gen) < density
            for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def assert_proportional(got: dict[str, torch.Tensor], want: list[torch.Tensor]) -> None:
    """Equal up to one positive factor over all layers (graphprune divides z1 by its maximum)."""
    got_list = list(got.values())
    scale = sum(w.sum() for w in want) / sum(g.sum() for g in got_list)
    assert float(scale) > 0
    for g, w in zip(got_list, want):
        torch.testing.assert_close(g * scale, w, rtol=1e-9, atol=1e-12 * float(w.abs().max()))


@pytest.mark.parametrize("build", [mlp, cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("density", [1.0, 0.4], ids=["dense", "masked"])
def test_px_round_equals_the_reference_formula_by_hand(build, density):
    net, ops, x = build()
    masks = random_masks(net, density, seed=7)
    weights = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    want = hand_px(weights, list(masks.values()), ops, x)
    got = PathScorer(net).px(masks if density < 1 else None, x)
    assert list(got) == list(masks)
    assert_proportional(got, want)
    if density < 1:  # the earlier all-ones data copy is a different formula, still available
        old = PathScorer(net, masked_data_copy=False).px(masks, x)
        assert_proportional(old, hand_px(weights, list(masks.values()), ops, x, masked_data=False))
        assert not torch.allclose(old["0.weight"] / old["0.weight"].sum(), got["0.weight"] / got["0.weight"].sum())


def test_pruned_weights_stay_zero_in_the_data_copy_across_rounds(monkeypatch):
    """Every round after the first runs the data copy with exactly the current keep mask as weights
    (0 where pruned), and a weight pruned in one round is 0 there in every later round."""
    net, _, x = cnn()
    scorer = PathScorer(net)
    calls: list[tuple[nn.Module, dict[str, torch.Tensor]]] = []
    real_run = paths_module.run

    def spy(gm, tensors, inp):
        if gm is scorer._data or gm is scorer._ones:
            calls.append((gm, {n: t.clone() for n, t in tensors.items()}))
        return real_run(gm, tensors, inp)

    monkeypatch.setattr(paths_module, "run", spy)
    seen: list[dict[str, torch.Tensor] | None] = []

    def score(masks):
        seen.append(None if masks is None else {n: m.clone() for n, m in masks.items()})
        return scorer.px(masks, x)

    iterate(score, 0.05, rounds=4)
    assert len(calls) == len(seen) == 4
    assert calls[0][0] is scorer._ones and seen[0] is None  # round 0: nothing pruned, all-ones copy
    for (gm, weights), masks in zip(calls[1:], seen[1:]):
        assert gm is scorer._data and set(weights) == set(masks)
        for name, mask in masks.items():
            assert torch.equal(weights[name], mask.double()), name
    for (_, earlier), (_, later) in zip(calls[1:], calls[2:]):
        for name in earlier:
            assert bool((later[name][earlier[name] == 0] == 0).all()), name


def test_layers_masked_in_the_model_count_as_pruned_in_the_data_copy():
    """A model that already carries masks (apply-masks' weight_mask buffers) scores like the dense
    model scored with those masks: its pruned weights are 0 in the data copy too."""
    net, _, x = mlp()
    masks = random_masks(net, 0.5, seed=11)
    masked = copy.deepcopy(net)
    install_masks(masked, masks)
    a, b = px_scores(masked, x), px_scores(net, x, masks=masks)
    for name in masks:
        torch.testing.assert_close(a[name], b[name], rtol=1e-9, atol=0)
