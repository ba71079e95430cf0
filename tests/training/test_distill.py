"""``graphprune.training.distill``: the soft loss is Hinton's temperature-scaled KL divergence, blended
with the hard loss by the distillation weight; a non-tensor output is refused by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphprune.errors import InputError
from graphprune.training.distill import distillation_loss, soft_loss


def test_distillation_loss_is_hintons() -> None:
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g), torch.arange(5)
    temperature = 3.0
    p, q = F.softmax(s / temperature, -1), F.softmax(t / temperature, -1)
    manual = (q * (q.log() - p.log())).sum(-1).mean() * temperature ** 2
    assert soft_loss(s, t, temperature) == pytest.approx(float(manual), rel=1e-5)
    assert float(soft_loss(t, t, temperature)) == pytest.approx(0.0, abs=1e-6)
    blended = distillation_loss(F.cross_entropy, s, t, y, temperature, 0.25)
    assert float(blended) == pytest.approx(float(0.75 * F.cross_entropy(s, y) + 0.25 * manual), rel=1e-5)
    with pytest.raises(InputError, match="logits distillation needs a float tensor"):
        soft_loss({"out": s}, t, temperature)
