"""The instant CLI: help, every argument error, every plan-schema error, a ``zoo:`` typo and
``plan --list`` run without importing torch (each case in a fresh interpreter, where ``sys.modules``
says what was imported); ``graphprune zoo`` builds no model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from graphprune.cli import main

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "timm", "numpy")
PROBE = """
import contextlib, io, json, sys
from graphprune.cli import main
heavy, argv = sys.argv[1].split(","), sys.argv[2:]
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = main(argv)
print(json.dumps({"rc": rc, "err": err.getvalue(), "loaded": [m for m in heavy if m in sys.modules]}))
"""


def _fresh(argv: list[str], cwd: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plans")
    (root / "bad_value.toml").write_text('[allocate]\nscope = "bogus"\n')
    (root / "bad_syntax.toml").write_text("rules = [\n")
    (root / "bad_key.json").write_text(json.dumps({"sparsty": 0.3}))
    return root


CASES = [
    (["--help"], 0, ""),
    (["--version"], 0, ""),
    (["compile", "--help"], 0, ""),
    (["compile"], 2, "required: SPEC"),
    (["frobnicate"], 2, "invalid choice"),
    (["compile", "zoo:resnet20", "--sparsity", "half"], 2, "invalid float value"),
    (["compile", "zoo:resnet20", "--input-size", "0"], 2, "expected a positive integer"),
    (["compile", "zoo:resnet20", "--sparsity", "1.5"], 2, "sparsity: expected a number in [0, 1)"),
    (["compile", "zoo:resnet20", "--resume"], 2, "the plan has no [admm] or [finetune] section"),
    (["compile", "zoo:resnet20", "--out", "m.tflite"], 2, "unsupported suffix '.tflite'"),
    (["compile", "zoo:resnet20", "--out", "m.onnx", "--report", "m.onnx"], 2, "name the same file"),
    (["compile", "zoo:resnet20", "--plan", "no/such/plan.toml"], 2, "does not exist"),
    (["compile", "zoo:resnet20", "--plan", "bad_key.json"], 2, "sparsty: unknown key"),
    (["compile", "zoo:no_such_model"], 2, "unknown model 'zoo:no_such_model'"),
    (["compile", "zoo:"], 2, "malformed model spec 'zoo:'"),
    (["inspect", "zoo:resnt20"], 2, "did you mean zoo:resnet20"),
    (["plan", "--list"], 0, ""),
    (["plan"], 0, ""),
    (["plan", "bad_value.toml"], 2, "bad_value.toml:2: allocate.scope"),
    (["plan", "bad_syntax.toml"], 2, "not valid TOML"),
    (["plan", "no-such-recipe"], 2, "neither a file nor a recipe"),
    (["plan", "uniform-50", "--model", "zoo:resnt20"], 2, "did you mean zoo:resnet20"),
]


@pytest.mark.parametrize(("argv", "rc", "fragment"), CASES, ids=[" ".join(c[0]) or "none" for c in CASES])
def test_cheap_paths_import_no_torch(argv: list[str], rc: int, fragment: str, plans: Path) -> None:
    result = _fresh(argv, plans)
    assert result["rc"] == rc, result["err"]
    assert fragment in str(result["err"])
    assert result["loaded"] == [], f"{argv} imported {result['loaded']}"


def test_zoo_catalog_and_spec_check_import_no_torch() -> None:
    code = ("import sys, models_zoo\n"
            "names = [e.name for e in models_zoo.catalog()]\n"
            "models_zoo.check_spec('zoo:resnet20')\n"
            "print(len(names), 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.split() == ["12", "False"]


def test_zoo_builds_no_model(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("graphprune zoo built a model")

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(nn.Module, "__init__", refuse)
    assert main(["zoo"]) == 0
    assert main(["zoo", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "zoo:resnet20" in out and "torchvision:resnet18" in out and "timm:resnet18 " in out
