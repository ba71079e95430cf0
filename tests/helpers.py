from __future__ import annotations

import torch
from torch import nn

import graphprune
from graphprune.testing import masked_equivalence_error


def make_nontrivial(model: nn.Module, seed: int = 0) -> nn.Module:
    """Some zoos zero-initialise heads or last BN scales; a constant output would make any equivalence
    check vacuous, so give every all-zero weight small random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.numel() > 1 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def calibrate(model: nn.Module, inputs: tuple, seed: int = 0) -> nn.Module:
    """Random affine norm parameters, then BatchNorm statistics from a random batch: with default
    statistics a deep random network's signal dies and its output is its last bias, which would make
    any equivalence check vacuous."""
    randomize_norms(model, seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns and all(isinstance(x, torch.Tensor) and x.is_floating_point() for x in inputs):
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        g = torch.Generator().manual_seed(seed)
        batch = tuple(torch.randn((4, *x.shape[1:]), generator=g) for x in inputs)
        model.train()
        with torch.no_grad():
            model(*batch)
    return model.eval()


def compile_and_check(model: nn.Module, x: torch.Tensor | tuple, tol: float = 1e-4, **kw):
    """Compile, then assert shape preservation, a non-constant output and masked equivalence."""
    inputs = x if isinstance(x, tuple) else (x,)
    model = calibrate(make_nontrivial(model.eval()), inputs)
    result = graphprune.compile(model, inputs, **kw)
    with torch.no_grad():
        dense = model(*inputs)
        pruned = result.module(*inputs)
    assert pruned.shape == dense.shape
    assert float(dense.float().std()) > 0 or dense.numel() == 1, "dense output is constant: test is vacuous"
    err = masked_equivalence_error(model, result.module, result.report.kept, inputs)
    assert err <= tol, f"masked equivalence error {err:.3e}"
    return result


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm with default stats is the identity; give it real statistics so slicing mistakes show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    for m in model.modules():
        if isinstance(m, (nn.LayerNorm, nn.GroupNorm)) and m.weight is not None:
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


class Residual(nn.Module):
    """conv-bn-relu stem, a residual conv-bn block and a linear head: small, with every coupling kind
    the scheduler tests need (a residual add, per-channel norms, a global mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.body(y))
        return self.head(y.mean((2, 3)))


def step_names(plan_schedule) -> list[str]:  # noqa: ANN001
    """A schedule's pass names, the dead-channel loop as ``fixed-point``."""
    from graphprune.schedule import FixedPoint

    return [s.pass_.name if not isinstance(s, FixedPoint) else "fixed-point" for s in plan_schedule.steps]
