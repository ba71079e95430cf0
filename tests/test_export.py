"""graphprune.export (what the emit pass writes): .pt2, ONNX and standalone-Python artifacts load back and
compute what the PyTorch module computes; writes are atomic; the .py artifact loads in a process where
graphprune cannot be imported; torch.compile runs the pruned module (the pass: tests/passes/test_emit.py).

ONNX parity over torchvision CNNs at 50 % channels is slow: CI runs a bounded subset at 64x64,
GRAPHPRUNE_SWEEP=full every torchvision classification CNN.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.fx as fx
from torch import nn

import graphprune
import models_zoo
from graphprune.export import ExportError, emit, load_python
from graphprune.export_py import StandaloneError, constructor, python_source
from graphprune.fold import bn_affine
from tests.conftest import sweep_mode
from tests.helpers import calibrate, make_nontrivial

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def pruned() -> tuple[fx.GraphModule, torch.Tensor]:
    model, (x,) = models_zoo.load("zoo:shufflenet_tiny")
    model = calibrate(make_nontrivial(model), (x,))
    return graphprune.compile(model, (x,), sparsity=0.5).module, x


@pytest.mark.parametrize("suffix", [".pt2", ".onnx", ".py"])
def test_emit_round_trip(pruned, tmp_path: Path, suffix: str) -> None:
    gm, x = pruned
    record = emit(gm, (x,), tmp_path / f"model{suffix}")
    assert record.format == suffix[1:] and record.parity_max_abs <= (1e-4 if suffix == ".onnx" else 1e-6)
    files = [Path(record.file), *map(Path, record.extra_files)]
    assert record.size_bytes == sum(f.stat().st_size for f in files) > 0
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"
    if suffix == ".pt2":  # the published loader, independently of emit's own check
        program = torch.export.load(record.file)
        with torch.no_grad():
            assert torch.equal(program.module()(x), gm(x))


def test_python_artifact_loads_without_graphprune(pruned, tmp_path: Path) -> None:
    gm, x = pruned
    emit(gm, (x,), tmp_path / "net.py")
    torch.save(x, tmp_path / "x.pt")
    torch.save(gm(x).detach(), tmp_path / "y.pt")
    script = textwrap.dedent(f"""
        import sys
        for name in ("graphprune", "passes", "models_zoo", "tests"):
            sys.modules[name] = None  # any import of them now fails
        sys.path.insert(0, {str(tmp_path)!r})
        import torch, net
        model = net.load()
        x = torch.load({str(tmp_path / 'x.pt')!r})
        batch = torch.cat([x, x])
        y = model(batch)
        assert y.shape[0] == 2, y.shape
        print(float((y[:1] - torch.load({str(tmp_path / 'y.pt')!r})).abs().max()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) <= 1e-5


class Custom(nn.Module):
    """A non-torch.nn leaf: no constructor call can be generated, so it is pickled."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([2.0, 3.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _shift(x: torch.Tensor) -> torch.Tensor:
    """Kept a call by torch.fx.wrap (like torchvision's stochastic_depth): the .py must import it."""
    return x - 0.5


torch.fx.wrap("_shift")


class _WithCustom(nn.Module):
    """A pickled custom leaf, a non-exported torch.nn class, a wrapped function, a persistent and a
    non-persistent free buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.custom = nn.Linear(3, 2), Custom()
        self.proj = nn.modules.linear.NonDynamicallyQuantizableLinear(2, 2)
        self.register_buffer("offset", torch.tensor([1.0, -1.0]))
        self.register_buffer("mask", torch.tensor([1.0, 0.0]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shift(self.proj(self.custom(self.fc(x)) + self.offset) * self.mask)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return isinstance(m, Custom) or super().is_leaf_module(m, name)


def test_python_artifact_pickles_custom_leaves_and_keeps_free_buffers(tmp_path: Path) -> None:
    root = _WithCustom()
    gm = fx.GraphModule(root, _Tracer().trace(root))
    record = emit(gm, (torch.randn(4, 3),), tmp_path / "custom.py")
    assert record.parity_max_abs == 0 and record.notes == ["pickled (not rebuilt from a constructor): ['custom']"]
    loaded = load_python(tmp_path / "custom.py")
    assert torch.equal(loaded.offset, root.offset) and torch.equal(loaded.mask, root.mask)
    assert "mask" not in loaded.state_dict() and type(loaded.proj) is type(root.proj)


def test_constructor_reproduces_only_what_it_can() -> None:
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False)
    assert constructor(conv) == f"torch.nn.{conv!r}"
    changed = nn.Conv2d(4, 8, 3)
    changed.out_channels = 5  # attribute no longer matches the weight: not rebuildable from repr
    reflect = nn.Conv2d(4, 8, 3, padding_mode="reflect")  # its repr prints reflect unquoted
    assert constructor(changed) is None and constructor(reflect) is None and constructor(Custom()) is None


def test_graph_calling_graphprune_is_refused() -> None:
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(bn_affine, (x, x, None, None, 1e-5)))
    with pytest.raises(StandaloneError, match="graphprune"):
        python_source(fx.GraphModule(nn.Module(), graph), "w.pt")


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x - 1


def test_failed_export_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "model.pt2"
    target.write_bytes(b"previous")
    with pytest.raises(ExportError, match="torch.export failed"):
        emit(_DataDependent(), (torch.randn(2),), target)
    assert target.read_bytes() == b"previous" and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ExportError, match="unsupported suffix"):
        emit(_DataDependent(), (torch.randn(2),), tmp_path / "model.tflite")


@pytest.mark.slow
def test_torch_compile_runs_the_pruned_module(pruned) -> None:
    """CI: dynamo capture + AOT autograd (seconds); full: inductor code generation (about a minute)."""
    gm, x = pruned
    backend = "inductor" if sweep_mode() == "full" else "aot_eager"
    torch._dynamo.reset()
    compiled = torch.compile(gm, backend=backend)
    with torch.no_grad():
        assert float((compiled(x) - gm(x)).abs().max()) <= 1e-5


def _torchvision_cnns() -> list[str]:
    tv = pytest.importorskip("torchvision")
    names = tv.models.list_models(module=tv.models)
    return [n for n in names if not n.startswith(("vit_", "swin_", "maxvit_"))]


CI_ONNX = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]


@pytest.mark.slow
@pytest.mark.parametrize("name", _torchvision_cnns() if sweep_mode() == "full" else CI_ONNX)
def test_onnx_parity_torchvision_cnn(name: str, tmp_path: Path) -> None:
    size = 96 if name == "inception_v3" else 64
    model, (x,) = models_zoo.load(f"torchvision:{name}", input_size=size)
    model = calibrate(make_nontrivial(model), (x,))
    result = graphprune.compile(model, (x,), sparsity=0.5)
    assert result.report.macs_after < result.report.macs_before
    record = emit(result.module, (x,), tmp_path / f"{name}.onnx")
    assert record.parity_max_abs <= 1e-4, record


@pytest.mark.parametrize("suffix", [".onnx", ".py"])
def test_cli_out_writes_every_format(tmp_path: Path, suffix: str) -> None:
    from graphprune.cli import main

    out = tmp_path / f"r20{suffix}"
    assert main(["compile", "zoo:resnet20", "--out", str(out), "-q"]) == 0
    x = torch.randn(2, 3, 32, 32)  # the example is batch 1: the written file takes any batch
    if suffix == ".py":
        assert load_python(out)(x).shape == (2, 10)
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert session.run(None, {session.get_inputs()[0].name: x.numpy()})[0].shape == (2, 10)
