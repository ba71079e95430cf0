"""trace: the model captured as a GraphModule, with every value's shape recorded and the dense MACs
counted (the shared tiny graph of ``conftest.py``)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("single_thread")


def test_trace_records_shapes_and_counts_macs(traced) -> None:
    assert {"traced", "shapes"} <= traced.facts
    out = [n for n in traced.gm.graph.nodes if n.op == "output"][0].args[0]
    assert traced.values[out.name].shape == (2, 4, 6, 6)
    assert traced.macs["dense"] == 2 * 36 * (8 * 3 * 9 + 4 * 8)
