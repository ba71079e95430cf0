from __future__ import annotations

import torch
from torch import nn

import graphprune
from graphprune.testing import masked_equivalence_error


def compile_and_check(model: nn.Module, x: torch.Tensor | tuple, tol: float = 1e-4, **kw):
    """Compile, then assert shape preservation and masked equivalence; returns the Result."""
    inputs = x if isinstance(x, tuple) else (x,)
    model = model.eval()
    result = graphprune.compile(model, inputs, **kw)
    with torch.no_grad():
        dense = model(*inputs)
        pruned = result.module(*inputs)
    assert pruned.shape == dense.shape
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
    return model
