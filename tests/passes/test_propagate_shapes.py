"""propagate-shapes: after a removal the shapes are provided again, and the analyses that read them
see the narrower widths."""

from __future__ import annotations

import pytest

from graphprune.passes import run_pass, run_pipeline
from passes import AnalyzeChannels, PropagateShapes, RemoveChannels

pytestmark = pytest.mark.usefixtures("single_thread")


def test_propagate_shapes_reprovides_shapes_after_removal(allocated) -> None:
    state = run_pass(allocated, RemoveChannels())
    state = run_pipeline(state, [PropagateShapes(), AnalyzeChannels()])
    out = [n for n in state.gm.graph.nodes if n.op == "output"][0].args[0]
    assert state.values[out.name].shape == (2, 4, 6, 6)
    assert next(g for g in state.channels.groups if g.num_prunable).size == 4
