"""canonicalize: a channel shuffle (view/transpose/view) folds into one index_select, and the graph
still computes the model."""

from __future__ import annotations

import pytest
import torch

from tests.passes.tiny_graph import X

pytestmark = pytest.mark.usefixtures("single_thread")


def test_canonicalize_folds_the_shuffle_into_one_index_select(canonical) -> None:
    targets = [n.target for n in canonical.gm.graph.nodes if n.op in ("call_function", "call_method")]
    assert torch.index_select in targets and "transpose" not in targets
    torch.testing.assert_close(canonical.gm(X), canonical.model(X))
