"""The tiny hand-built graph that the core passes' tests share, and one fixture per stage of the core
pipeline: each pass is tested alone, its requirements satisfied by fixtures that run only the passes
before it (``model`` -> ``traced`` -> ``canonical`` -> ``grouped`` -> ``scored`` -> ``allocated``)."""

from __future__ import annotations

import pytest
from torch import nn

from graphprune.passes import run_pass
from graphprune.state import CompileState, Options
from passes import Allocate, AnalyzeChannels, Canonicalize, ScoreMagnitude, Trace
from tests.helpers import calibrate
from tests.passes.tiny_graph import Tiny, X


@pytest.fixture
def model() -> nn.Module:
    return calibrate(Tiny().eval(), (X,))


@pytest.fixture
def traced(model) -> CompileState:
    return run_pass(CompileState("tiny", model, (X,), Options(sparsity=0.5)), Trace())


@pytest.fixture
def canonical(traced) -> CompileState:
    return run_pass(traced, Canonicalize())


@pytest.fixture
def grouped(canonical) -> CompileState:
    return run_pass(canonical, AnalyzeChannels())


@pytest.fixture
def scored(grouped) -> CompileState:
    return run_pass(grouped, ScoreMagnitude(p=2))


@pytest.fixture
def allocated(scored) -> CompileState:
    return run_pass(scored, Allocate())
