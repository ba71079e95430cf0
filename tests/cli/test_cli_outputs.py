"""The command line never loses a user's file: its outputs are committed together at the end, two
options naming one file are refused before any work, links and devices are written through, a full
disk or any later error leaves nothing behind, and every file written is printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from graphprune.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY = """
import torch
from torch import nn


def make():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    model.example_input_shape = (1, 3, 16, 16)
    return model


def relu_only():
    return nn.Sequential(nn.ReLU())
"""

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich honours COLUMNS: keep long temporary paths on one line."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "models" / "tiny.py"
    path.parent.mkdir()
    path.write_text(TINY)
    return f"{path}:make"


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return work


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("graphprune: error: ") and "Traceback" not in err, err
    return err


def test_out_and_report_naming_one_file_are_refused_before_any_work(
        tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import models_zoo

    work = _work(tmp_path)
    (work / "link.json").symlink_to("s.pt")
    monkeypatch.setattr(models_zoo, "load", lambda *a, **k: pytest.fail("the model was built"))
    for report in ("s.pt", "link.json"):
        assert main(["compile", spec, "--out", str(work / "s.pt"), "--report", str(work / report)]) == 2
        assert "name the same file" in _one_error(capsys)
    assert main(["compile", spec, "--out", str(work / "m.py"), "--plot", str(work / "m_weights.pt")]) == 2
    assert "name the same file" in _one_error(capsys)  # the .py export's weights file counts
    assert _listing(work) == ["link.json"]


def test_report_through_a_symlink_keeps_the_link(tmp_path: Path, spec: str) -> None:
    work = _work(tmp_path)
    (work / "real.json").write_text("old")
    (work / "link.json").symlink_to("real.json")
    assert main(["compile", spec, "--report", str(work / "link.json"), "-q"]) == 0
    assert (work / "link.json").is_symlink()
    assert json.loads((work / "real.json").read_text())["model"] == spec
    assert _listing(work) == ["link.json", "real.json"]


def test_report_to_a_fifo_is_written_through(tmp_path: Path, spec: str) -> None:
    work = _work(tmp_path)
    fifo = work / "report.json"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(["compile", spec, "--report", str(fifo), "-q"]) == 0
    reader.join(timeout=30)
    assert json.loads(received[0])["model"] == spec
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _listing(work) == ["report.json"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_report_to_a_full_device_leaves_the_model_unwritten(tmp_path: Path, spec: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # through a link of our own: code that replaces the link instead cannot damage /dev/full itself
    link = tmp_path / "full.json"
    link.symlink_to("/dev/full")
    work = _work(tmp_path)
    assert main(["compile", spec, "--out", str(work / "m.pt"), "--report", str(link), "-q"]) == 2
    assert _one_error(capsys).endswith(f"--report {link}: cannot write (No space left on device)")
    assert _listing(work) == []
    assert link.is_symlink() and stat.S_ISCHR(os.stat(link).st_mode)


def test_error_after_the_model_is_written_leaves_nothing(tmp_path: Path, spec: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    work = _work(tmp_path)
    relu_only = spec.replace(":make", ":relu_only")
    assert main(["compile", relu_only, "--out", str(work / "r.pt"), "--plot", str(work / "p.png"),
                 "--report", str(work / "r.json")]) == 2
    assert "no layers to plot" in _one_error(capsys)
    assert _listing(work) == []


def test_interrupt_while_writing_leaves_no_partial_file(tmp_path: Path, spec: str,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from graphprune.report import Report

    def interrupted(self: Report) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(Report, "to_json", interrupted)  # after --out was written, before the report
    work = _work(tmp_path)
    assert main(["compile", spec, "--out", str(work / "m.pt"), "--report", str(work / "r.json")]) == 130
    assert capsys.readouterr().err.strip() == "graphprune: interrupted"
    assert _listing(work) == []


def test_every_file_written_is_printed(tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    work = _work(tmp_path)
    files = {"model": work / "m.py", "weights": work / "m_weights.pt", "plot": work / "p.png",
             "report": work / "r.json"}
    assert main(["compile", spec, "--out", str(files["model"]), "--plot", str(files["plot"]),
                 "--report", str(files["report"])]) == 0
    out = capsys.readouterr().out
    for label, path in files.items():
        assert f"wrote {label}: {path} (" in out and f"{path.stat().st_size:,} bytes" in out, label
    assert _listing(work) == sorted(p.name for p in files.values())


def test_report_to_stdout_moves_the_summary_to_stderr(tmp_path: Path, spec: str) -> None:
    link = tmp_path / "out.json"  # a link of our own to /dev/stdout (see the /dev/full test)
    link.symlink_to("/dev/stdout")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"}
    proc = subprocess.run([sys.executable, "-m", "graphprune", "compile", spec, "--report", str(link)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == spec  # stdout is the report alone: pipe it to jq
    assert f"wrote report: {link}" in proc.stderr
    assert link.is_symlink()


# ------------------------------------------------------------------------------------ full disk

FULL_DISK = textwrap.dedent("""
    import errno, io, sys
    import graphprune.export, graphprune.io
    from graphprune.cli import main

    class Full(io.FileIO):
        written = 0
        def write(self, data):
            Full.written += len(data)
            if Full.written > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def full_open(path, mode="r", *args, **kwargs):
        if "w" not in mode:
            return open(path, mode, *args, **kwargs)
        raw = Full(path, "w")
        return io.BufferedWriter(raw) if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw))

    graphprune.export.open = graphprune.io.open = full_open  # the disk fills up under every writer
    spec, *outs = sys.argv[1:]
    for out in outs:
        Full.written = 0
        print(main(["compile", spec, "--out", out, "-q"]), flush=True)
""")


def test_full_disk_is_one_line_exit_2_and_leaves_nothing(tmp_path: Path, spec: str) -> None:
    """In a subprocess: torch's C++ writer used to abort the process (exit 134) after the message."""
    work = _work(tmp_path)
    outs = [str(work / f"m{suffix}") for suffix in (".pt2", ".pt", ".py")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, spec, *outs], capture_output=True, text=True,
                          env=env, cwd=work, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["2", "2", "2"]
    assert proc.stderr.strip().splitlines() == [f"graphprune: error: --out {out}: cannot write (No space left on "
                                                "device)" for out in outs]
    assert _listing(work) == []


def test_saved_model_still_loads(tmp_path: Path, spec: str) -> None:
    out = _work(tmp_path) / "m.pt"
    assert main(["compile", spec, "--sparsity", "0.5", "--out", str(out), "-q"]) == 0
    module = torch.load(out, weights_only=False)
    assert module(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_plan_emit_files_are_staged_with_the_rest(tmp_path: Path, spec: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    work = _work(tmp_path)
    plan = tmp_path / "plan.toml"
    plan.write_text(f'sparsity = 0.5\n[emit]\nformat = "pt2"\npath = "{work / "out" / "m"}"\n')
    relu_only = spec.replace(":make", ":relu_only")  # the plot then fails after the emit pass wrote
    assert main(["compile", relu_only, "--plan", str(plan), "--plot", str(work / "p.png")]) == 2
    assert "no layers to plot" in _one_error(capsys)
    assert _listing(work) == []  # neither the emitted file nor the directory made for it
    assert main(["compile", spec, "--plan", str(plan), "--report", str(work / "r.json")]) == 0
    emitted = json.loads((work / "r.json").read_text())["artifacts"]["emit"]["files"]
    assert [record["file"] for record in emitted] == [str(work / "out" / "m.pt2")]
    assert f"wrote emitted file: {work / 'out' / 'm.pt2'}" in capsys.readouterr().out
    program = torch.export.load(work / "out" / "m.pt2")
    assert program.module()(torch.randn(1, 3, 16, 16)).shape == (1, 4)
    assert _listing(work) == ["out", "r.json"]
