"""Writing files safely: atomically (a temporary file beside the target, then a rename, so a crash never
leaves a half-written artifact where a complete one is expected), and through a Python file object
for torch's serializers.

Why the file object: ``torch.save`` and ``torch.export.save`` write through a C++ zip writer. Given a
path, or a file whose ``write`` raises (a full disk), that writer fails with a RuntimeError and then,
when it is destroyed, tries again to write the end of the archive and throws from its destructor:
the process aborts (exit 134 with a C++ stack dump) whatever the Python code does. ``binary_file``
hands torch a sink that never fails; the first OSError is kept and raised once torch is done.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


class _Sink(io.RawIOBase):
    """A writable file object over ``raw`` whose writes never raise: after the first OSError it
    swallows the rest (torch's writer sees a normal stream) and ``error`` holds that OSError."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw, self.error, self.position = raw, None, 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # torch.export.save asks, and rewinds once it is done

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.error is None:
            try:
                self.position = self.raw.seek(offset, whence)
            except OSError as exc:
                self.error = exc
        return self.position

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.position += size
        if self.error is None:
            try:
                self.raw.write(data)
            except OSError as exc:
                self.error = exc
        return size

    def flush(self) -> None:
        if self.error is None:
            try:
                self.raw.flush()
            except OSError as exc:
                self.error = exc


@contextmanager
def binary_file(path: Path) -> Iterator[IO[bytes]]:
    """Open ``path`` for writing as a file object torch's serializers can be given safely; raises the
    first OSError (disk full, I/O error) on leaving the block."""
    with open(path, "wb") as raw:
        sink = _Sink(raw)
        yield sink  # type: ignore[misc]
        sink.flush()
    if sink.error is not None:
        raise sink.error


def torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` that fails with a plain OSError instead of aborting the process."""
    import torch

    with binary_file(path) as fh:
        torch.save(obj, fh)
