"""Indexing family (graphprune/ops/indexing.py): strided slices tie channel blocks; getitem's formula."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn

from tests.helpers import compile_and_check
from tests.ops.checks import check_function, key_id, t

pytestmark = pytest.mark.usefixtures("single_thread")


def test_strided_slices_of_channels_tie_blocks():
    """Rotary embeddings slice the head dim with step 2: channel pairs are kept or removed together and the
    slices keep their step."""

    class Rotary(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 8)
            self.c = nn.Linear(8, 2)

        def forward(self, x):
            h = self.a(x)
            rot = torch.stack([-h[..., 1::2], h[..., ::2]], -1).reshape(h.shape)
            return self.c(self.b(h + rot))

    r = compile_and_check(Rotary(), torch.randn(3, 4), sparsity=0.5)
    kept = r.report.kept["a.weight"][0]
    assert len(kept) == 4 and all(kept[i] // 2 == kept[i + 1] // 2 for i in range(0, 4, 2))


FUNCTIONS = [
    (operator.getitem, (t(2, 3, 4), (slice(None), 0))), (operator.getitem, (t(2, 3, 4), (Ellipsis, slice(1, None, 2)))),
    (operator.getitem, (t(2, 3, 4), (None, 1, Ellipsis, None))), (operator.getitem, (t(2, 3), (0, 5))),
]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
