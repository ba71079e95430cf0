"""One error path for the user's code: a model file or factory that fails, an import that fails, a size
the model rejects, each one line naming the user's file:line and the exception, exit 2, no traceback
(``--debug`` or GRAPHPRUNE_DEBUG=1 shows it); Ctrl-C anywhere, start-up included, is "interrupted", 130."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphprune.cli import main

REPO = Path(__file__).resolve().parents[2]
MODELS = """\
import torch
from torch import nn


def raises():
    raise ValueError("no weights for this width")


def needs(width, depth=2):
    return nn.Conv2d(3, width, 3)
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "user_models.py").write_text(MODELS)
    (tmp_path / "broken_syntax.py").write_text("import torch\n\ndef make(:\n    pass\n")
    (tmp_path / "broken_import.py").write_text("import torch\nimport no_such_package_xyz\n\ndef make():\n    pass\n")
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("from userpkg.missing_helpers import block\n\ndef make():\n    return block()\n")
    return tmp_path


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("graphprune: error: "), err
    return err.removeprefix("graphprune: error: ")


@pytest.mark.parametrize(("spec", "expected"), [
    ("user_models.py:raises", "user_models.py:6: ValueError: no weights for this width"),
    ("user_models.py:needs", "factory 'needs' (defined at {dir}/user_models.py:9) needs argument(s) width;"),
    ("broken_syntax.py:make", "broken_syntax.py:3: SyntaxError: invalid syntax"),
    ("broken_import.py:make", "broken_import.py:2: ModuleNotFoundError: No module named 'no_such_package_xyz'"),
    ("userpkg.nets:make", "userpkg/nets.py:1: ModuleNotFoundError: No module named 'userpkg.missing_helpers'"),
])
def test_user_code_failure_is_one_line_naming_file_and_line(spec: str, expected: str, model_dir: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(model_dir)
    monkeypatch.syspath_prepend(str(model_dir))
    assert main(["compile", spec]) == 2
    message = _error(capsys)
    assert message.startswith(f"cannot load '{spec}': "), message
    assert expected.format(dir=model_dir) in message


def test_input_size_the_model_rejects_names_the_models_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torchvision")
    assert main(["inspect", "torchvision:vit_b_16", "--input-size", "100"]) == 2
    message = _error(capsys)
    assert "torchvision/models/vision_transformer.py:" in message
    assert message.endswith("AssertionError: Input shape indivisible by patch size!")


@pytest.mark.parametrize("how", ["flag", "flag-before-command", "env"])
def test_debug_shows_the_traceback(how: str, model_dir: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    spec = f"{model_dir / 'user_models.py'}:raises"
    argv = {"flag": ["compile", spec, "--debug"], "flag-before-command": ["--debug", "compile", spec],
            "env": ["compile", spec]}[how]
    if how == "env":
        monkeypatch.setenv("GRAPHPRUNE_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise ValueError("no weights for this width")' in err
    assert err.strip().splitlines()[-1].startswith("graphprune: error: cannot load")


def test_interrupt_while_loading_is_130_without_traceback(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import models_zoo

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(models_zoo, "load", interrupted)
    assert main(["compile", "zoo:resnet20"]) == 130
    assert capsys.readouterr().err.strip() == "graphprune: interrupted"


INTERRUPT_AT_IMPORT = textwrap.dedent("""
    import importlib.abc, sys

    class CtrlC(importlib.abc.MetaPathFinder):  # the user presses Ctrl-C while torch is imported
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                raise KeyboardInterrupt

    sys.meta_path.insert(0, CtrlC())
    from graphprune.cli import main  # what the `graphprune` entry point does
    sys.exit(main())
""")


def test_interrupt_during_startup_is_130_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_AT_IMPORT, "compile", "zoo:resnet20", "--out",
                           str(tmp_path / "m.pt")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120, check=False)
    assert (proc.returncode, proc.stderr.strip()) == (130, "graphprune: interrupted")
    assert list(tmp_path.iterdir()) == []
