"""Tests for the ``graphprune`` command line, run in-process through ``main(argv)``: compile writes a
smaller model and a report, the saved artifacts load and run, inspect and zoo print their tables,
and every user error is one ``graphprune: error:`` line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphprune.cli import main

SPEC = "zoo:resnet20"
REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich honours COLUMNS: keep fqns on one line whatever the runner's terminal says."""
    monkeypatch.setenv("COLUMNS", "200")


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("graphprune: error: "), lines[0]
    assert "Traceback" not in captured.err
    return lines[0]


# -------------------------------------------------------------------------------------- compile


def test_compile_writes_report_and_exported_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_path, out_path = tmp_path / "report.json", tmp_path / "model.pt2"
    rc = main(["compile", SPEC, "--sparsity", "0.5", "--report", str(report_path), "--out", str(out_path)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err

    report = json.loads(report_path.read_text())
    assert report["model"] == SPEC
    assert report["params_after"] < report["params_before"]
    assert report["macs_after"] < report["macs_before"]
    assert report["macs_reduction"] > 1
    assert report["options"]["sparsity"] == 0.5
    assert report["passes"][0] == "trace"

    program = torch.export.load(out_path)
    x = torch.randn(1, 3, 32, 32)
    assert program.module()(x).shape == (1, 10)

    out = captured.out
    for expected in ("params", "MACs", f"{report['params_before']:,}", f"{report['params_after']:,}",
                     "trace", "remove-channels", str(out_path), str(report_path)):
        assert expected in out, expected
    assert f"{out_path.stat().st_size:,} bytes" in out
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_compile_pt_saves_graph_module_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "model.pt"
    assert main(["compile", SPEC, "--sparsity", "0.25", "--round-to", "4", "--out", str(out_path), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    module = torch.load(out_path, weights_only=False)
    assert isinstance(module, torch.fx.GraphModule)
    assert module(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_compile_plan_file_values_are_not_overridden_by_defaults(tmp_path: Path) -> None:
    plan, report_path = tmp_path / "plan.toml", tmp_path / "report.json"
    plan.write_text("sparsity = 0.25\nscore = 'l1'\n")
    assert main(["compile", SPEC, "--plan", str(plan), "--round-to", "2", "--report", str(report_path),
                 "--quiet"]) == 0
    options = json.loads(report_path.read_text())["options"]
    assert options == {**options, "sparsity": 0.25, "score": "l1", "round_to": 2, "exact": False}


def test_compile_prints_the_layout_it_chose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("sparsity = 0.5\n[emit]\nfuse = true\nlayout = 'channels_last'\n")
    assert main(["compile", "zoo:resnet8", "--plan", str(plan)]) == 0
    assert "layout: channels_last (asked channels_last: asked)" in capsys.readouterr().out


def test_compile_exact_keeps_layernorm_channels(tmp_path: Path) -> None:
    reports = {}
    for flag in ([], ["--exact"]):
        path = tmp_path / f"report{len(flag)}.json"
        assert main(["compile", "zoo:vit_tiny", *flag, "--report", str(path), "-q"]) == 0
        reports[bool(flag)] = json.loads(path.read_text())
    assert reports[True]["options"]["exact"] is True
    assert reports[False]["params_after"] < reports[True]["params_after"] < reports[True]["params_before"]


def test_compile_capture_flag_selects_the_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = {}
    for capture in ("fx", "export"):
        path = tmp_path / f"{capture}.json"
        assert main(["compile", "zoo:resnet8", "--capture", capture, "--report", str(path), "-q"]) == 0
        reports[capture] = json.loads(path.read_text())
    assert [reports[c]["artifacts"]["trace"]["capture"] for c in ("fx", "export")] == ["fx", "export"]
    assert reports["fx"]["params_after"] == reports["export"]["params_after"] < reports["fx"]["params_before"]
    capsys.readouterr()
    assert main(["compile", "zoo:resnet8", "--capture", "jit"]) == 2
    assert "--capture: invalid choice: 'jit'" in capsys.readouterr().err


def test_compile_export_failure_suggests_pt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("data-dependent control flow\nlong explanation follows")

    monkeypatch.setattr(torch.export, "export", fail)
    out_path = tmp_path / "model.pt2"
    assert main(["compile", SPEC, "--out", str(out_path), "-q"]) == 2
    line = _error_line(capsys)
    assert "torch.export failed" in line and "data-dependent control flow" in line
    assert "--out" in line and str(tmp_path / "model.pt") in line
    assert not out_path.exists() and not list(tmp_path.iterdir())


# -------------------------------------------------------------------------------------- inspect


def test_inspect_prints_groups_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", SPEC]) == 0
    out = capsys.readouterr().out
    assert "stem.0.0.weight[0]" in out
    assert "layers.0.conv1.0.weight[0]" in out
    assert "unknown ops: none" in out
    assert "total: 14 groups (12 prunable, 2 fully frozen, 2 not shown: use --all)" in out
    assert "stem.0.0.weight[1]" not in out  # the input-channel group has no prunable channel


def test_inspect_all_includes_frozen_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", SPEC, "--all"]) == 0
    out = capsys.readouterr().out
    assert "stem.0.0.weight[1]" in out
    assert "reaches the model output" in out
    assert "not shown" not in out


def test_inspect_heads_lists_the_attention_head_groups(capsys: pytest.CaptureFixture[str]) -> None:
    """``--heads`` analyses split by whole heads, as a ``structure = "heads"`` rule would, and shows only
    those groups: one per block of zoo:vit_tiny, 4 heads each, qkv rows and the projection's columns."""
    assert main(["inspect", "zoo:vit_tiny", "--heads"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "(heads)" in line and "attn.qkv.weight[0]" in line]
    assert len(rows) == 2 and all("│    4 │        4 │" in r for r in rows)
    assert "blocks.0.attn.proj.weight[1]" in out and "mlp" not in out
    assert main(["inspect", "zoo:vit_tiny"]) == 0
    assert "(heads)" not in capsys.readouterr().out  # without the flag, channels are single channels


def test_inspect_lists_inexact_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "zoo:vit_tiny"]) == 0
    out = capsys.readouterr().out
    assert "inexact reasons" in out and "LayerNorm" in out


# ------------------------------------------------------------------------------------------ zoo


def test_zoo_lists_catalog_and_namespaces(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for expected in ("zoo:resnet20", "zoo:vit_tiny", "1x3x32x32", "torchvision:", "timm:"):
        assert expected in out, expected


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["compile", "zoo:no_such_model"], "unknown model 'zoo:no_such_model'"),
        (["inspect", "torchvision:resnet1"], "did you mean torchvision:resnet18"),
        (["compile", SPEC, "--sparsity", "1.5"], "sparsity: expected a number in [0, 1), got 1.5"),
        (["compile", SPEC, "--plan", "no/such/plan.toml"], "plan file no/such/plan.toml does not exist"),
        (["compile", SPEC, "--out", "model.tflite"], "unsupported suffix '.tflite'"),
        (["compile", SPEC, "--score", "l3"], "unknown criterion 'l3'"),
        (["compile", SPEC, "--input-size", "0"], "expected a positive integer"),
        (["compile", SPEC, "--resume"], "--resume continues training: the plan has no [admm] or [finetune] section"),
        (["compile", SPEC, "--data", "imagenet"], "data.name: unknown dataset 'imagenet'"),
        (["compile"], "required: SPEC"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv: list[str], fragment: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert fragment in _error_line(capsys)


def test_bad_plan_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"sparsty": 0.3}))
    assert main(["compile", SPEC, "--plan", str(plan)]) == 2
    assert "sparsty: unknown key" in _error_line(capsys)


def test_help_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "compile" in capsys.readouterr().out


def test_python_dash_m_reports_errors_the_same_way() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "graphprune", "compile", "zoo:no_such_model"],
                          check=False, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("graphprune: error: unknown model 'zoo:no_such_model'")


def test_plot_and_latency_flags(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png, report_path = tmp_path / "widths.png", tmp_path / "r.json"
    assert main(["compile", SPEC, "--plot", str(png), "--latency", "--report", str(report_path), "--quiet"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(report_path.read_text())
    passes = [t["pass"] for t in report["schedule"]]
    assert passes.index("measure-latency") > passes.index("remove-channels")  # times the pruned model
    batches = report["artifacts"]["latency"]["batches"]
    assert set(batches) == {"1", "32"} and {"dense", "pruned", "pruned+fused"} <= set(batches["1"])
    assert all(v["median_ms"] > 0 for b in batches.values() for v in b.values())


def test_ratios_are_na_when_a_count_is_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "relu.py"
    path.write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.ReLU())\n")
    assert main(["compile", f"{path}:make", "--input-size", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("│") and ("params" in line or "MACs" in line)]
    assert len(rows) == 2 and all(row.rstrip(" │").endswith("n/a") for row in rows), rows
    assert any(line.startswith("warning: nothing to prune") for line in lines)
    from graphprune.cli_render import reduction

    assert (reduction(0, 0), reduction(10, 0), reduction(100, 25)) == ("n/a", "n/a", "4.00x (75.0%)")
