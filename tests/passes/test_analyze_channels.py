"""analyze-channels: the coupled channels of the tiny graph form one prunable group of its hidden
width, with every tensor slice that carries it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("single_thread")


def test_analyze_channels_groups_the_hidden_width(grouped) -> None:
    prunable = [g for g in grouped.channels.groups if g.num_prunable]
    assert len(prunable) == 1 and prunable[0].size == 8
    members = {(m.fqn, m.dim) for m in prunable[0].members}
    assert {("conv1.weight", 0), ("conv1.bias", 0), ("bn.weight", 0), ("conv2.weight", 1)} <= members
