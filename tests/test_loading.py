"""Every output format loads back as ``docs/loading.md`` shows: its snippets are run as written, the
"without graphprune" ones in a process where graphprune cannot be imported, and their outputs compared
with the pruned module's. A ``.pt`` needs graphprune only where the docs say it does."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import graphprune
import models_zoo
from graphprune.cli import main
from graphprune.errors import InputError
from graphprune.export import emit
from graphprune.loading import OnnxModule, needs_graphprune, save_pt

pytestmark = pytest.mark.usefixtures("single_thread")
DOC = Path(__file__).resolve().parents[1] / "docs" / "loading.md"
FORMATS = (".pt2", ".onnx", ".py", ".pt")
BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    class _Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("graphprune", "models_zoo", "passes"):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
    sys.meta_path.insert(0, _Blocked())
    import numpy as np
    def _np(v):
        return v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
""")


def snippets() -> dict[str, str]:
    """The page's python blocks by their first-line comment (``# without graphprune: .pt2`` -> key)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return {block.splitlines()[0].lstrip("# ").strip(): block for block in blocks}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """zoo:resnet20 pruned and written in every format into one directory."""
    directory = tmp_path_factory.mktemp("formats")
    model, inputs = models_zoo.load("zoo:resnet20")
    module = graphprune.compile(model, inputs, sparsity=0.5).module
    for suffix in FORMATS[:3]:
        emit(module, inputs, directory / f"model{suffix}", check=False)  # the tests below check
    assert save_pt(module, directory / "model.pt") == []
    return directory, module


def _check(module: nn.Module, x: object, y: object) -> None:
    x, y = (torch.as_tensor(v.detach() if isinstance(v, torch.Tensor) else np.asarray(v)) for v in (x, y))
    with torch.no_grad():
        expected = module(x)
    assert torch.allclose(y, expected, atol=1e-4), "the loaded model computes another function"


def test_every_format_loads_without_graphprune_as_documented(written) -> None:
    directory, module = written
    found = snippets()
    program = BLOCK
    for suffix in FORMATS:
        code = found[f"without graphprune: {suffix}"]
        program += (f"\nns = {{}}\nexec(compile({code!r}, 'docs/loading.md', 'exec'), ns)\n"
                    f"np.savez('out{suffix}.npz', x=_np(ns['x']), y=_np(ns['y']))\n")
    program += "\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('graphprune', 'models_zoo', 'passes')))\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-c", program], cwd=directory, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", "graphprune was imported"
    for suffix in FORMATS:
        out = np.load(directory / f"out{suffix}.npz")
        _check(module, out["x"], out["y"])


def test_graphprune_load_runs_the_documented_snippet(written, monkeypatch: pytest.MonkeyPatch) -> None:
    directory, module = written
    monkeypatch.chdir(directory)
    namespace: dict = {}
    exec(compile(snippets()["with graphprune"], "docs/loading.md", "exec"), namespace)  # noqa: S102
    _check(module, namespace["x"], namespace["y"])
    for suffix in FORMATS:
        _check(module, namespace["x"], graphprune.load(f"model{suffix}")(namespace["x"]))
    kinds = {suffix: type(graphprune.load(f"model{suffix}")) for suffix in FORMATS}
    assert kinds[".onnx"] is OnnxModule and issubclass(kinds[".pt"], torch.fx.GraphModule)
    assert all(issubclass(kinds[s], nn.Module) for s in (".pt2", ".py"))


def test_load_refuses_what_it_cannot_read(written, tmp_path: Path) -> None:
    directory, _ = written
    with pytest.raises(InputError, match="unknown format '.tflite'"):
        graphprune.load(tmp_path / "m.tflite")
    with pytest.raises(InputError, match="no such file"):
        graphprune.load(tmp_path / "m.pt2")
    with pytest.raises(InputError, match=r"expected 1 inputs \(.*\), got 2"):
        graphprune.load(directory / "model.onnx")(torch.zeros(1, 3, 32, 32), torch.zeros(1))


class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> collections.OrderedDict:
        return collections.OrderedDict(out=self.head(torch.relu(self.conv(x))))


def test_a_dict_subclass_output_keeps_the_tracer_and_the_cli_says_so(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    x = torch.randn(1, 3, 8, 8)
    module = graphprune.compile(_DictOut().eval(), (x,), sparsity=0.5).module
    assert needs_graphprune(module) == ["an output is a OrderedDict (a dict subclass, kept by graphprune's tracer)"]
    assert save_pt(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert type(loaded(x)) is collections.OrderedDict  # what dropping the tracer would have lost
    factory = tmp_path / "dictout.py"
    factory.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                       "import torch\nfrom test_loading import _DictOut\n\ndef make():\n"
                       "    return _DictOut().eval(), (torch.randn(1, 3, 8, 8),)\n")
    assert main(["compile", f"{factory}:make", "--out", str(tmp_path / "cli.pt"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "loading this .pt needs graphprune installed (an output is a OrderedDict" in err


def test_report_records_the_example_inputs(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    assert main(["compile", "zoo:resnet8", "--input-size", "16", "--report", str(report), "-q"]) == 0
    assert json.loads(report.read_text())["inputs"] == [{"shape": [1, 3, 16, 16], "dtype": "float32"}]
