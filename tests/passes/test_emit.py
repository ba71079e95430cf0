"""emit: the pass writes every path it is given through ``graphprune.export`` and records each file (its
parity and size), provides ``exported``, and refuses to run with no output path (the exporters
themselves: tests/test_export.py, tests/test_export_batch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import models_zoo
from graphprune.export import ExportError
from graphprune.passes import run_pipeline
from graphprune.state import CompileState
from passes import Trace
from passes.emit import Emit

pytestmark = pytest.mark.usefixtures("single_thread")


def test_emit_pass_records_every_file(tmp_path: Path) -> None:
    model, (x,) = models_zoo.load("zoo:resnet20")
    paths = (str(tmp_path / "r.pt2"), str(tmp_path / "r.py"))
    state = run_pipeline(CompileState("r20", model, (x,)), [Trace(), Emit(paths=paths)])
    records = state.artifacts["emit"]["files"]
    assert "exported" in state.facts and [r["file"] for r in records] == list(paths)
    assert all(r["parity_max_abs"] == 0 and r["size_bytes"] > 0 for r in records)
    with pytest.raises(ExportError, match="no output paths"):
        run_pipeline(state, [Emit()])
