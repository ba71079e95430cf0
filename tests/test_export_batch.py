"""graphprune.export_batch: exported .pt2 and .onnx files take any batch size (dim 0 named ``batch``)
and compute what the pruned module computes at batches 1, 2 and 7; ``[emit] dynamic_batch = false``
gives a static file; a module whose batch cannot be dynamic is exported static with a note saying why.

The zoo models run at 16x16 so each export stays a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch
import torch.fx as fx
from torch import nn

import graphprune
import models_zoo
from graphprune.cli import main
from graphprune.export import ExportError, emit, parity
from graphprune.plan import load_plan
from graphprune.scheduler import schedule
from tests.helpers import calibrate, make_nontrivial

pytestmark = pytest.mark.usefixtures("single_thread")

# residual, concatenation, depthwise + SE, attention reshapes, channel shuffle
ZOO = ["resnet20", "densenet_tiny", "mobilenet_tiny", "vit_tiny", "shufflenet_tiny"]
SIZE = 16


@pytest.fixture(scope="module")
def pruned() -> dict[str, tuple[fx.GraphModule, torch.Tensor]]:
    out = {}
    for name in ZOO:
        model, (x,) = models_zoo.load(f"zoo:{name}", input_size=SIZE)
        model = calibrate(make_nontrivial(model), (x,))
        out[name] = graphprune.compile(model, (x,), sparsity=0.5).module, x
    return out


def _ort(path: str) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def _onnx_dims(path: str) -> list[list[str | int]]:
    graph = onnx.load(path).graph
    return [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input]


@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
@pytest.mark.parametrize("name", ZOO)
def test_zoo_export_matches_module_at_batches_1_2_7(pruned, tmp_path: Path, name: str, suffix: str) -> None:
    gm, x = pruned[name]
    record = emit(gm, (x,), tmp_path / f"{name}{suffix}")
    if suffix == ".pt2":
        run = torch.export.load(record.file).module()
    else:
        session = _ort(record.file)
        run = lambda b: torch.from_numpy(session.run(None, {session.get_inputs()[0].name: b.numpy()})[0])  # noqa: E731
    tol = 1e-6 if suffix == ".pt2" else 1e-4
    gen = torch.Generator().manual_seed(0)
    for batch in (1, 2, 7):
        xb = torch.randn(batch, *x.shape[1:], generator=gen)
        with torch.no_grad():
            want, got = gm(xb), run(xb)
        assert got.shape == want.shape == (batch, 10)
        assert float((got - want).abs().max()) <= tol * max(1.0, float(want.abs().max())), (batch, name)
    assert record.dynamic_batch is True and record.checked_batches == [1, 3] and not record.notes, record
    if suffix == ".onnx":
        assert _onnx_dims(record.file) == [["batch", 3, SIZE, SIZE]]


def test_dynamic_batch_false_in_the_plan_gives_a_static_export(tmp_path: Path) -> None:
    model, (x,) = models_zoo.load("zoo:small_cnn", input_size=SIZE)
    x2 = torch.cat([x, x])
    assert schedule(load_plan({"emit": {"path": "m.onnx"}})).steps[-1].pass_.dynamic_batch is True  # the default
    paths = [str(tmp_path / "m.onnx"), str(tmp_path / "m.pt2")]
    plan = {"sparsity": 0.5, "emit": {"dynamic_batch": False}, "passes": {"emit": {"paths": paths}}}
    records = graphprune.compile(model, (x,), plan).report.artifacts["emit"]["files"]
    assert all(not r["dynamic_batch"] and r["notes"] == ["static batch 1: [emit] dynamic_batch = false"]
               for r in records), records
    assert _onnx_dims(paths[0]) == [[1, 3, SIZE, SIZE]]
    session = _ort(paths[0])
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument, match="dimensions"):
        session.run(None, {session.get_inputs()[0].name: x2.numpy()})
    with pytest.raises(Exception, match=r"size\(\)\[0\] == 1"):
        torch.export.load(paths[1]).module()(x2)


class _BakedBatch(nn.Module):
    """``reshape(1, -1)`` bakes the batch: the module itself only runs at batch 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 6 * 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).reshape(1, -1))


class _BranchOnOne(nn.Module):
    """Runs at every batch but computes differently at 1: torch.export, traced at batch 2 and assuming
    a dynamic size is never 1, would record the wrong branch for batch 1."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2 if x.shape[0] == 1 else self.fc(x)


@pytest.mark.parametrize(("model", "x", "suffixes", "why"), [
    (fx.symbolic_trace(_BakedBatch().eval()), torch.randn(1, 3, 8, 8), (".pt2", ".onnx", ".py"),
     "static batch 1: the module does not run at batch 3 (RuntimeError: mat1 and mat2"),
    (_BranchOnOne().eval(), torch.randn(1, 3), (".pt2", ".onnx"),
     "static batch 1: the dynamic file differs from the module at batch 1"),
], ids=["baked-reshape", "branch-on-batch-1"])
def test_module_without_a_dynamic_batch_is_exported_static_with_a_note(tmp_path: Path, model: nn.Module,
                                                                        x: torch.Tensor, suffixes: tuple[str, ...],
                                                                        why: str) -> None:
    for suffix in suffixes:
        record = emit(model, (x,), tmp_path / f"m{suffix}")
        assert record.dynamic_batch is False and record.checked_batches == [1], record
        assert len(record.notes) == 1 and record.notes[0].startswith(why), record.notes
        assert record.parity_max_abs <= 1e-6, record  # the static file is right at the example's batch
    assert _onnx_dims(str(tmp_path / "m.onnx"))[0][0] == 1


class _DictInput(nn.Module):
    """A dict of batched tensors and a tensor without a batch (its dim 0 is not the batch's)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, d: dict[str, torch.Tensor], weights: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": self.fc(d["a"]) + d["b"].sum(1, keepdim=True) * weights.sum(), "first": d["a"][:, 0]}


@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_batched_leaves_of_a_pytree_input_share_one_dynamic_batch(tmp_path: Path, suffix: str) -> None:
    model = _DictInput().eval()
    inputs = ({"a": torch.randn(4, 3), "b": torch.randn(4, 3)}, torch.randn(5))
    record = emit(model, inputs, tmp_path / f"d{suffix}")
    if suffix == ".onnx":
        assert _onnx_dims(record.file) == [["batch", 3], ["batch", 3], [5]]
    else:
        program = torch.export.load(record.file).module()
        one = ({"a": torch.randn(1, 3), "b": torch.randn(1, 3)}, inputs[1])
        assert program(*one)["y"].shape == (1, 2) and torch.allclose(program(*one)["y"], model(*one)["y"])
        with pytest.raises(Exception, match="weights"):
            program({"a": torch.randn(2, 3), "b": torch.randn(2, 3)}, torch.randn(6))  # not a batch dim: static
    assert record.dynamic_batch is True and record.checked_batches == [4, 5] and record.parity_max_abs <= 1e-6


def test_python_export_is_checked_at_a_second_batch(pruned, tmp_path: Path) -> None:
    gm, x = pruned["vit_tiny"]
    record = emit(gm, (x,), tmp_path / "vit.py")
    assert record.dynamic_batch is True and record.checked_batches == [1, 3] and record.parity_max_abs <= 1e-6


def test_parity_refuses_outputs_of_another_shape() -> None:
    with pytest.raises(ExportError, match=r"output 0 of the artifact has shape \(1, 4\), the module's \(4,\)"):
        parity(torch.zeros(4), [torch.zeros(1, 4)])


def _write_baked_factory(tmp_path: Path) -> Path:
    source = tmp_path / "baked.py"
    source.write_text(
        "import torch\nfrom torch import nn\n\n\n"
        "class Baked(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8 * 14 * 14, 2)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.conv(x).reshape(1, -1))\n\n\n"
        "def factory():\n"
        "    return Baked().eval(), (torch.randn(1, 3, 16, 16),)\n")
    return source


def test_cli_warns_when_the_batch_cannot_be_dynamic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, out = f"{_write_baked_factory(tmp_path)}:factory", tmp_path / "baked.pt2"
    warning = "static batch 1: the module does not run at batch 3 (RuntimeError: mat1 and mat2"
    assert main(["compile", spec, "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().err.startswith(f"graphprune: warning: --out {out}: {warning}")
    assert torch.export.load(out).module()(torch.randn(1, 3, 16, 16)).shape == (1, 2)
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[emit]\npath = "{tmp_path / "planned.pt2"}"\n')  # written by the emit pass
    assert main(["compile", spec, "--plan", str(plan), "-q"]) == 0
    assert capsys.readouterr().err.startswith(f"graphprune: warning: {tmp_path / 'planned.pt2'}: {warning}")
    plan.write_text("[emit]\ndynamic_batch = false\n")  # asked for static: nothing to warn about
    assert main(["compile", spec, "--plan", str(plan), "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().err == ""
