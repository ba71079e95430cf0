"""``graphprune.progress``: stages nest and reach listeners; the spinner names the innermost stage with
its elapsed time, draws only on a terminal (or when forced) and never in captured output; a compile
announces its load, every pass, the latency measurement and the export."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from graphprune import progress
from graphprune.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stages_nest_and_reach_listeners() -> None:
    seen: list[tuple[str, ...]] = []
    with progress.listening(seen.append):
        with progress.stage("compile"), progress.stage("export m.onnx"):
            pass
    with progress.stage("unheard"):
        pass
    assert seen == [("compile",), ("compile", "export m.onnx"), ("compile",), ()]


def test_line_shows_the_innermost_stage_and_keeps_the_outer_start() -> None:
    line = progress._Line("compile zoo:resnet8")
    assert line.text() == "compile zoo:resnet8"
    line.update(("trace",))
    outer = line.stages[0][1]
    line.update(("trace", "export m.onnx"))
    assert re.fullmatch(r"compile zoo:resnet8: export m\.onnx  \d+\.\d s", line.text())
    line.update(("trace",))
    assert line.stages == [("trace", outer)]  # the outer stage's clock was not restarted


@pytest.mark.parametrize(("setting", "stream", "expected"), [
    ("", io.StringIO(), False),  # piped or captured
    ("", _Tty(), True),
    ("0", _Tty(), False),
    ("1", io.StringIO(), True),
])
def test_spinner_is_wanted_only_on_a_terminal_unless_set(setting: str, stream: io.StringIO, expected: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, setting)
    monkeypatch.setenv("TERM", "xterm")
    assert progress.wanted(stream) is expected


def test_forced_spinner_draws_the_stage_and_its_time(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, "1")
    with progress.spinner("compile zoo:resnet8"), progress.stage("measure-latency"):
        print("the model's own output")  # stdout is not the terminal: it stays on stdout
        time.sleep(0.4)
    captured = capsys.readouterr()
    assert captured.out == "the model's own output\n"
    assert re.search(r"compile zoo:resnet8: measure-latency  \d+\.\d s", captured.err), captured.err


def test_compile_announces_load_passes_latency_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    out = tmp_path / "m.pt"
    seen: set[str] = set()
    with progress.listening(lambda running: seen.update(running)):
        assert main(["compile", "zoo:resnet8", "--latency", "--out", str(out)]) == 0
    assert {"load", "trace", "remove-channels", "measure-latency", f"export {out}"} <= seen
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no spinner
