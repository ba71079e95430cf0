"""Shape-query family (graphprune/ops/queries.py): formulas of ``size`` and ``dim``."""

from __future__ import annotations

import pytest

from graphprune.ops.registry import Method
from tests.ops.checks import check_function, key_id, t

FUNCTIONS = [(Method("size"), (t(2, 3), 1)), (Method("size"), (t(2, 3),)), (Method("dim"), (t(2, 3),))]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
