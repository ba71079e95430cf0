"""One tiny model per rule-table entry not covered elsewhere (embedding, instance norm; the other
families' models are in tests/ops/test_<family>.py): each compiles, removes channels and computes the
masked dense function exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.helpers import compile_and_check


class Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.fc = nn.Embedding(20, 8), nn.Linear(8, 3)

    def forward(self, idx):
        return self.fc(self.emb(idx)).sum(1)


class InstanceNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.b(self.norm(self.a(x))).mean((2, 3))


CASES = {
    "embedding": (Embedding, lambda: torch.randint(0, 20, (2, 5))),
    "instance_norm": (InstanceNorm, lambda: torch.randn(1, 3, 6, 6)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_removes_channels_exactly(case):
    cls, make_input = CASES[case]
    torch.manual_seed(0)
    model = cls().eval()
    result = compile_and_check(model, make_input(), sparsity=0.5)
    assert result.report.unknown_ops == []
    assert result.report.params_after < result.report.params_before
