"""Every file a command writes, staged and committed together at the end: nothing of the user's is
lost, and nothing half-done is left behind.

Why: a command writes several files (model, its weights, report, plot). If one of them fails, the
others must not stay behind; two options must not name the same file (one would overwrite the
other); and the path the user gave must be honoured, not replaced: a symlink stays a link (its
target file gets the content), a device, a FIFO or ``/dev/stdout`` is written through.

Use: ``outputs.add(flag, path)`` for each file before any work (refuses duplicates, directories);
``with outputs:`` creates a staging directory beside each target (so a permission problem shows
before the model is built) and removes everything staged on any exception, Ctrl-C included; writers
write to ``outputs.staged(flag)`` (the target's own name inside the staging directory, so a file that
names its companion, like a ``.py`` export naming its weights, stays valid); ``commit()`` writes the
through-targets first (the only step that can fail late), then renames every staged file onto its
target and returns what was written.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphprune.errors import GraphpruneError, InputError, OutputError

_PSEUDO = ("/dev/", "/proc/")  # file systems where a rename means nothing: write through


@dataclass(frozen=True)
class Target:
    flag: str  # the option naming the file, for messages: "--out", "--report", "--out (weights)"
    path: Path  # as the user gave it
    final: Path  # where the content lands: the resolved file (symlinks followed), or ``path`` when through
    through: bool  # an existing non-regular file (device, FIFO, /dev/stdout): written into, never replaced


@dataclass(frozen=True)
class Written:
    flag: str
    path: Path
    size: int


def _link_chain(path: Path) -> list[str]:
    """``path`` and every symlink hop from it, as absolute paths (not resolved further)."""
    chain, current = [os.path.abspath(path)], os.path.abspath(path)
    for _ in range(40):
        if not os.path.islink(current):
            break
        current = os.path.abspath(os.path.join(os.path.dirname(current), os.readlink(current)))
        chain.append(current)
    return chain


def _target(flag: str, path: Path) -> Target:
    try:
        info = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from exc
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise InputError(f"{flag} {path}: is a directory")
    special = any(hop.startswith(_PSEUDO) for hop in _link_chain(path))
    if special or (info is not None and not stat.S_ISREG(info.st_mode)):
        return Target(flag, path, path, through=True)
    return Target(flag, path, Path(os.path.realpath(path)), through=False)


def _same(a: Target, b: Target) -> bool:
    if a.final == b.final:
        return True
    try:
        return os.path.samefile(a.final, b.final)  # hard links, two names of one device
    except OSError:
        return False


class OutputSet:
    """The files one command writes; see the module docstring."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}
        self._staging: dict[Path, Path] = {}  # target directory (or through-target) -> staging directory
        self._created: list[Path] = []  # parent directories made for the outputs, removed on failure
        self._open = False

    # ------------------------------------------------------------------------------------ planning

    def add(self, flag: str, path: str | Path) -> Target:
        """Register the file ``flag`` writes; refuses a directory and a file another option names."""
        target = _target(flag, Path(path))
        for other in self.targets.values():
            if _same(target, other):
                raise InputError(f"{flag} {path} and {other.flag} {other.path} name the same file: "
                                 "give each output its own path")
        self.targets[flag] = target
        return target

    def writes_to(self, fd: int) -> bool:
        """Whether an output is written through to the file open as ``fd`` (e.g. 1: standard output)."""
        try:
            info = os.fstat(fd)
        except OSError:
            return False
        return any(t.through and _samestat(t.path, info) for t in self.targets.values())

    # ------------------------------------------------------------------------------------- staging

    def __enter__(self) -> OutputSet:
        try:
            for target in self.targets.values():
                self._staging_dir(target)
        except BaseException:
            self.rollback()
            raise
        self._open = True
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.rollback()  # a no-op after commit()

    def _staging_dir(self, target: Target) -> Path:
        key = target.final if target.through else target.final.parent
        if key not in self._staging:
            try:
                if target.through:
                    self._staging[key] = Path(tempfile.mkdtemp(prefix="graphprune-"))
                else:
                    self._make_parents(key)
                    self._staging[key] = Path(tempfile.mkdtemp(prefix=".graphprune-", dir=key))
            except OSError as exc:
                raise OutputError(f"{target.flag} {target.path}: cannot write ({exc.strerror or exc})") from exc
        return self._staging[key]

    def _make_parents(self, directory: Path) -> None:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        for d in reversed(missing):
            d.mkdir()
            self._created.append(d)

    def staged(self, flag: str) -> Path:
        """Where the writer of ``flag`` writes: the target's name inside its staging directory."""
        if not self._open:
            raise RuntimeError("OutputSet.staged() outside `with outputs:`")
        target = self.targets[flag]
        return self._staging_dir(target) / target.final.name

    def write(self, flag: str, write: Callable[[Path], Any]) -> Any:
        """``write(staged path)``, with an OSError (disk full, permission) as one-line OutputError."""
        try:
            return write(self.staged(flag))
        except OSError as exc:
            raise self.error(flag, exc) from exc

    def error(self, flag: str, exc: OSError) -> OutputError:
        target = self.targets[flag]
        return OutputError(f"{flag} {target.path}: cannot write ({exc.strerror or exc})")

    def unstage(self, value: Any) -> Any:
        """``value`` (a string, or lists and dicts of them) with every staged path replaced by the path
        the user gave: for messages and the report, which must name the real files."""
        if isinstance(value, str):
            for target in self.targets.values():
                directory = self._staging.get(target.final if target.through else target.final.parent)
                if directory is not None:
                    value = value.replace(str(directory / target.final.name), str(target.path))
            return value
        if isinstance(value, dict):
            return {k: self.unstage(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.unstage(v) for v in value)
        return value

    # -------------------------------------------------------------------------------------- commit

    def commit(self) -> list[Written]:
        """Put every staged file in place: write-through targets first, then the renames."""
        written = {}
        ordered = sorted(self.targets.values(), key=lambda t: not t.through)
        for target in ordered:
            staged = self.staged(target.flag)
            if not staged.is_file():
                raise GraphpruneError(f"{target.flag} {target.path}: nothing was written (a graphprune bug)")
            written[target.flag] = Written(target.flag, target.path, staged.stat().st_size)
            if target.through:
                self._write_through(target, staged)
        for target in ordered:
            if not target.through:
                self._rename(target, self.staged(target.flag))
        self._created.clear()
        self.rollback()
        return [written[flag] for flag in self.targets]

    def _write_through(self, target: Target, staged: Path) -> None:
        try:
            with open(staged, "rb") as source, open(target.path, "ab") as sink:
                shutil.copyfileobj(source, sink)
        except OSError as exc:
            raise self.error(target.flag, exc) from exc

    def _rename(self, target: Target, staged: Path) -> None:
        try:
            mode = stat.S_IMODE(os.stat(target.final).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        try:
            os.chmod(staged, mode)  # a replaced file keeps its mode, a new one gets what open() gives
            os.replace(staged, target.final)
        except OSError as exc:
            raise self.error(target.flag, exc) from exc

    def rollback(self) -> None:
        """Remove everything staged (and the directories made for it); the targets are untouched."""
        for directory in self._staging.values():
            shutil.rmtree(directory, ignore_errors=True)
        self._staging.clear()
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except OSError:
                continue  # something else was put there meanwhile: leave it
        self._created.clear()
        self._open = False


def _samestat(path: Path, info: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.stat(path), info)
    except OSError:
        return False
