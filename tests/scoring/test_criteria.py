"""Loss-gradient and weight criteria against hand-computed values on tiny networks."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from torch import nn

from graphprune.scoring import (
    bn_scale_scores,
    fpgm_scores,
    geometric_median,
    grasp_scores,
    magnitude_scores,
    random_scores,
    snip_scores,
    taylor_scores,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def mlp(bias: bool = True) -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 5, bias=bias), nn.ReLU(), nn.Linear(5, 4, bias=bias)).double()


def batches(n: int = 2, size: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(size, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (size,), generator=g))
            for _ in range(n)]


def hand_grads(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backprop of mean cross-entropy through Linear-ReLU-Linear, written out."""
    w1, b1, w2, b2 = model[0].weight, model[0].bias, model[2].weight, model[2].bias
    pre = x @ w1.T + b1
    h = pre.clamp(min=0)
    logits = h @ w2.T + b2
    delta2 = (torch.softmax(logits, 1) - F.one_hot(y, 4)) / len(y)
    delta1 = (delta2 @ w2) * (pre > 0)
    return (delta1.T @ x).detach(), (delta2.T @ h).detach()


def test_snip_is_abs_theta_times_hand_gradient():
    model, data = mlp(), batches(2)
    got = snip_scores(model, data, batches=2)
    g1 = sum(hand_grads(model, x, y)[0] for x, y in data)
    g2 = sum(hand_grads(model, x, y)[1] for x, y in data)
    torch.testing.assert_close(got["0.weight"], (model[0].weight * g1).abs().detach())
    torch.testing.assert_close(got["2.weight"], (model[2].weight * g2).abs().detach())


def test_snip_on_masked_model_uses_masked_weights():
    model, data = mlp(), batches(1)
    mask = torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    got = snip_scores(model, data, {"0.weight": mask})
    ref = mlp()
    with torch.no_grad():
        ref[0].weight.mul_(mask)
    g1, _ = hand_grads(ref, *data[0])
    torch.testing.assert_close(got["0.weight"], (ref[0].weight * g1).abs().detach())
    assert not got["0.weight"][~mask].any()


def test_taylor_is_mean_squared_first_order_term():
    model, data = mlp(), batches(2)
    got = taylor_scores(model, data, batches=2)
    terms = [(model[0].weight * hand_grads(model, x, y)[0]) ** 2 for x, y in data]
    torch.testing.assert_close(got["0.weight"], (sum(terms) / 2).detach())


def test_grasp_is_theta_times_hessian_gradient_product():
    model, data = mlp(), batches(1)
    temperature = 3.0
    x, y = data[0]
    shapes = [p.shape for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts, start = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = flat[start:start + s.numel()].reshape(s)
            start += s.numel()
        out = torch.func.functional_call(model, parts, (x,))
        return F.cross_entropy(out / temperature, y)

    hessian = torch.autograd.functional.hessian(loss, flat0)
    grad = torch.autograd.functional.jacobian(loss, flat0)
    # GraSP differentiates the scored weights only: restrict H and g to them
    index = torch.zeros_like(flat0, dtype=torch.bool)
    start = 0
    for n, s in zip(names, shapes):
        if n.endswith("weight"):
            index[start:start + s.numel()] = True
        start += s.numel()
    hg = hessian[index][:, index] @ grad[index]
    want = flat0[index] * hg
    got = grasp_scores(model, data, temperature=temperature)
    torch.testing.assert_close(torch.cat([got["0.weight"].reshape(-1), got["2.weight"].reshape(-1)]), want)


def test_random_is_seeded_and_magnitude_is_abs_power():
    model = mlp()
    a, b, c = random_scores(model, 0), random_scores(model, 0), random_scores(model, 1)
    assert all(torch.equal(a[n], b[n]) for n in a) and not torch.equal(a["0.weight"], c["0.weight"])
    mask = {"2.weight": model[2].weight > 0}
    got = magnitude_scores(model, mask, p=2)
    torch.testing.assert_close(got["0.weight"], model[0].weight.detach() ** 2)
    torch.testing.assert_close(got["2.weight"], (model[2].weight * mask["2.weight"]).detach() ** 2)


def test_bn_scale_broadcasts_following_gamma_and_falls_back_to_mean_magnitude():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([-2.0, 0.5, 1.0]))
    got = bn_scale_scores(model)
    assert torch.equal(got["0.weight"][:, 0, 0, 0], torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64))
    assert torch.equal(got["0.weight"].amin((1, 2, 3)), got["0.weight"].amax((1, 2, 3)))
    torch.testing.assert_close(got["3.weight"][:, 0, 0, 0], model[3].weight.detach().abs().flatten(1).mean(1).double())


def test_geometric_median_matches_numerical_minimiser():
    points = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def total(p):
        return float(torch.linalg.vector_norm(points - torch.as_tensor(p), dim=1).sum())

    best = min((minimize(total, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                                      "maxiter": 20000})
                for start in [points.mean(0).numpy(), points[0].numpy()]), key=lambda r: r.fun)
    gm = geometric_median(points)
    assert total(gm.numpy()) <= best.fun + 1e-9
    torch.testing.assert_close(gm, torch.as_tensor(best.x), atol=1e-4, rtol=0)


def test_fpgm_scores_are_distances_to_the_geometric_median_per_filter():
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 6, 2, bias=False)
    got = fpgm_scores(conv)["weight"].double()
    rows = conv.weight.detach().double().flatten(1)
    gm = geometric_median(rows)
    want = torch.stack([torch.linalg.vector_norm(r - gm) for r in rows])
    torch.testing.assert_close(got.flatten(1).amin(1), want)
    torch.testing.assert_close(got.flatten(1).amax(1), want)
    approx = fpgm_scores(conv, approximate=True)["weight"].flatten(1)[:, 0]
    brute = torch.tensor([sum(float(torch.linalg.vector_norm(rows[i] - rows[j])) for j in range(6))
                          for i in range(6)], dtype=torch.float64)
    torch.testing.assert_close(approx, brute)


def test_criteria_never_mutate_the_model():
    model, data = mlp(), batches(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for fn in (lambda: snip_scores(model, data), lambda: grasp_scores(model, data),
               lambda: taylor_scores(model, data, train=True), lambda: fpgm_scores(model),
               lambda: bn_scale_scores(model), lambda: magnitude_scores(model)):
        fn()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("p", [1, 2])
def test_magnitude_ranks_like_abs(p):
    model = mlp()
    s = magnitude_scores(model, p=p)["0.weight"].reshape(-1)
    w = model[0].weight.detach().abs().reshape(-1)
    assert all((s[i] < s[j]) == (w[i] < w[j]) for i, j in itertools.combinations(range(len(w)), 2))
