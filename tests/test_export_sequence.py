"""Exported files of token models take any sequence length (``graphprune.export_batch``): dim 1 of an
integer input is dynamic in .pt2 and named ``sequence`` in ONNX, checked one token longer; a model whose
length is fixed keeps its dynamic batch at the example's length, and a note says why."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

import graphprune
from graphprune.export import emit

pytestmark = pytest.mark.usefixtures("single_thread")
HALF = {"prune": [{"select": "*", "sparsity": 0.5}]}


class Tokens(nn.Module):
    def __init__(self, fixed_length: int | None = None) -> None:
        super().__init__()
        self.embed, self.up, self.down = nn.Embedding(50, 16), nn.Linear(16, 32), nn.Linear(32, 16)
        self.positions = nn.Parameter(torch.randn(fixed_length, 16)) if fixed_length else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        if self.positions is not None:
            h = h + self.positions
        return self.down(torch.relu(self.up(h)))


@pytest.mark.parametrize("capture", ["fx", "export"])
@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_a_token_models_file_takes_another_batch_and_length(tmp_path: Path, capture: str, suffix: str) -> None:
    model = Tokens().eval()
    ids = torch.randint(0, 50, (2, 7))
    result = graphprune.compile(model, (ids,), HALF, capture=capture)
    record = emit(result.module, (ids,), tmp_path / f"m{suffix}")
    assert (record.dynamic_batch, record.dynamic_sequence, record.notes) == (True, True, [])
    other = torch.randint(0, 50, (3, 12))
    want = result.module(other)
    if suffix == ".pt2":
        got = torch.export.load(record.file).module()(other)
    else:
        import onnxruntime

        inputs = onnx.load(record.file).graph.input
        dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in inputs]
        assert dims == [["batch", "sequence"]]
        session = onnxruntime.InferenceSession(record.file, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: other.numpy()})[0])
    assert torch.allclose(got, want, atol=1e-5)


def test_a_fixed_length_keeps_a_dynamic_batch_and_says_why(tmp_path: Path) -> None:
    model = Tokens(fixed_length=7).eval()
    ids = torch.randint(0, 50, (2, 7))
    result = graphprune.compile(model, (ids,), HALF, capture="fx")
    record = emit(result.module, (ids,), tmp_path / "m.pt2")
    assert (record.dynamic_batch, record.dynamic_sequence) == (True, False)
    assert len(record.notes) == 1 and record.notes[0].startswith("static sequence length:")
    run = torch.export.load(record.file).module()
    more = torch.randint(0, 50, (5, 7))
    assert torch.allclose(run(more), result.module(more), atol=1e-6)


def test_an_image_models_record_has_no_sequence(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    x = torch.randn(2, 3, 8, 8)
    record = emit(graphprune.compile(model, (x,), HALF).module, (x,), tmp_path / "m.pt2")
    assert (record.dynamic_batch, record.dynamic_sequence) == (True, None)


class MaskedTokens(Tokens):
    """Token ids and a bool padding mask of the same length: the mask's dim 1 is the sequence too."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) * mask.unsqueeze(-1)


def test_a_bool_mask_varies_with_the_tokens_it_masks(tmp_path: Path) -> None:
    """The export request keeps every dim of an integer or bool input dynamic (``capture_sizes``), and the
    emitted file's length check lengthens a bool mask with the ids (one predicate, ``integer_like``): the
    file takes another batch and length with its mask."""
    model = MaskedTokens().eval()
    ids, mask = torch.randint(0, 50, (2, 7)), torch.rand(2, 7) > 0.3
    result = graphprune.compile(model, (ids, mask), HALF, capture="fx")
    record = emit(result.module, (ids, mask), tmp_path / "m.pt2")
    assert (record.dynamic_batch, record.dynamic_sequence, record.notes) == (True, True, [])
    other, other_mask = torch.randint(0, 50, (3, 12)), torch.rand(3, 12) > 0.3
    got = torch.export.load(record.file).module()(other, other_mask)
    assert torch.allclose(got, result.module(other, other_mask), atol=1e-5)
