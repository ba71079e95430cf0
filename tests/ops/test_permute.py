"""Permute family (graphprune/ops/permute.py): shape formulas of permute and transpose."""

from __future__ import annotations

import pytest
import torch

from graphprune.ops.registry import Method
from tests.ops.checks import check_function, key_id, t

FUNCTIONS = [(Method("permute"), (t(2, 3, 4), 2, 0, 1)), (torch.permute, (t(2, 3, 4), (0, 2, 1))),
             (Method("transpose"), (t(2, 3, 4), -1, 0))]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
