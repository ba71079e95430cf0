"""graphprune.outputs and graphprune.io: files are staged and committed together, a name given twice is
refused, links and devices are honoured, and a failure (disk full, Ctrl-C) leaves nothing behind."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest
import torch

from graphprune.errors import InputError, OutputError
from graphprune.io import binary_file, torch_save
from graphprune.outputs import OutputSet


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_commit_writes_every_file_and_leaves_no_staging(tmp_path: Path) -> None:
    outputs = OutputSet()
    outputs.add("--out", tmp_path / "m.bin")
    outputs.add("--report", tmp_path / "sub" / "dir" / "r.json")
    with outputs:
        outputs.write("--out", lambda p: p.write_bytes(b"model"))
        outputs.write("--report", lambda p: p.write_text("{}"))
        assert not (tmp_path / "m.bin").exists()  # nothing in place before the commit
        written = outputs.commit()
    assert [(w.flag, w.size) for w in written] == [("--out", 5), ("--report", 2)]
    assert (tmp_path / "m.bin").read_bytes() == b"model"
    assert _tree(tmp_path) == ["m.bin", "sub", "sub/dir", "sub/dir/r.json"]


def test_failure_or_interrupt_before_commit_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "keep.json").write_text("the user's")
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        outputs = OutputSet()
        outputs.add("--out", tmp_path / "new" / "m.bin")
        outputs.add("--report", tmp_path / "keep.json")
        with pytest.raises(type(error)), outputs:
            outputs.write("--out", lambda p: p.write_bytes(b"model"))
            outputs.write("--report", lambda p: p.write_text("replaced"))
            raise error
        assert _tree(tmp_path) == ["keep.json"]  # the directory made for m.bin is gone too
        assert (tmp_path / "keep.json").read_text() == "the user's"


@pytest.mark.parametrize("alias", ["same", "dot", "symlink", "hardlink"])
def test_two_options_naming_one_file_are_refused(tmp_path: Path, alias: str) -> None:
    target = tmp_path / "s.pt"
    target.write_bytes(b"x")
    other = {"same": target, "dot": tmp_path / "." / "s.pt", "symlink": tmp_path / "link.json",
             "hardlink": tmp_path / "hard.json"}[alias]
    if alias == "symlink":
        other.symlink_to(target)
    elif alias == "hardlink":
        os.link(target, other)
    outputs = OutputSet()
    outputs.add("--out", target)
    with pytest.raises(InputError, match=r"--report .* and --out .*s\.pt name the same file"):
        outputs.add("--report", other)


def test_symlink_stays_a_link_and_its_target_gets_the_content(tmp_path: Path) -> None:
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old")
    real.chmod(0o640)
    link.symlink_to(real.name)
    outputs = OutputSet()
    outputs.add("--report", link)
    with outputs:
        outputs.write("--report", lambda p: p.write_text("new"))
        outputs.commit()
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # a replaced file keeps its mode


def test_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    outputs = OutputSet()
    assert outputs.add("--report", fifo).through
    with outputs:
        outputs.write("--report", lambda p: p.write_text("through"))
        outputs.commit()
    reader.join(timeout=10)
    assert received == [b"through"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _tree(tmp_path) == ["r.json"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_device_that_fails_is_a_one_line_error_and_nothing_else_is_written(tmp_path: Path) -> None:
    link = tmp_path / "full.json"
    link.symlink_to("/dev/full")
    outputs = OutputSet()
    outputs.add("--out", tmp_path / "m.bin")
    assert outputs.add("--report", link).through
    with pytest.raises(OutputError, match=r"^--report .*full.json: cannot write \(No space left on device\)$"), \
            outputs:
        outputs.write("--out", lambda p: p.write_bytes(b"model"))
        outputs.write("--report", lambda p: p.write_text("{}"))
        outputs.commit()  # the write-through fails before any rename
    assert _tree(tmp_path) == ["full.json"]
    assert link.is_symlink() and stat.S_ISCHR(os.stat(link).st_mode)


def test_unwritable_directory_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)  # root ignores chmod: simulate the refusal
    outputs = OutputSet()
    outputs.add("--out", tmp_path / "ro" / "m.bin")
    with pytest.raises(OutputError, match=r"^--out .*m\.bin: cannot write \(Permission denied\)$"), outputs:
        pass
    assert _tree(tmp_path) == []


def test_a_directory_is_not_an_output(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        OutputSet().add("--report", tmp_path)


def test_unstage_names_the_users_paths(tmp_path: Path) -> None:
    outputs = OutputSet()
    outputs.add("--out", tmp_path / "m.pt2")
    with outputs:
        staged = str(outputs.staged("--out"))
        assert staged != str(tmp_path / "m.pt2")
        got = outputs.unstage({"files": [{"file": staged}], "why": f"{staged}: failed"})
    assert got == {"files": [{"file": str(tmp_path / "m.pt2")}], "why": f"{tmp_path / 'm.pt2'}: failed"}


# ------------------------------------------------------------------------------------------- io


class _FullFile:
    """A file on a disk that fills up after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def flush(self) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0


def test_torch_serializers_see_a_full_disk_as_one_oserror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's zip writer must never see the failing write: it would abort the process when destroyed."""
    import graphprune.io as gio

    real_open = open
    monkeypatch.setattr(gio, "open", lambda path, mode: _Wrapped(real_open(path, mode), _FullFile(4096)),
                        raising=False)
    with pytest.raises(OSError) as info:
        torch_save(torch.nn.Linear(100, 100), tmp_path / "m.pt")
    assert info.value.errno == errno.ENOSPC
    program = torch.export.export(torch.nn.Linear(100, 100), (torch.randn(1, 100),))
    with pytest.raises(OSError), binary_file(tmp_path / "m.pt2") as fh:
        torch.export.save(program, fh)


class _Wrapped:
    def __init__(self, real: object, full: _FullFile) -> None:
        self.real, self.full = real, full

    def __enter__(self) -> _FullFile:
        return self.full

    def __exit__(self, *exc: object) -> None:
        self.real.close()  # type: ignore[attr-defined]


def test_torch_save_through_the_sink_round_trips(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    torch_save(model, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert torch.equal(loaded.weight, model.weight)
