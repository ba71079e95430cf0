"""Which slow step is running: stages announced by the library, shown by the command line.

Why: a compile with ``--latency`` or an ONNX export runs for seconds to minutes; a silent terminal
looks hung. The library only announces (``stage(name)`` around every pass and every export, a loop
over no listener when nobody listens); the command line listens and shows a spinner with the stage
and its elapsed time on stderr (``spinner()``), only when stderr is a terminal, so captured output,
pipes and logs never get control characters. ``GRAPHPRUNE_PROGRESS=1`` forces the spinner, ``=0``
turns it off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

PROGRESS_ENV = "GRAPHPRUNE_PROGRESS"
Listener = Callable[[tuple[str, ...]], None]  # called with the stages running, outermost first

_listeners: list[Listener] = []
_running: list[str] = []


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Announce that ``name`` runs for the duration of the block (stages nest)."""
    _running.append(name)
    _notify()
    try:
        yield
    finally:
        _running.pop()
        _notify()


def _notify() -> None:
    for listener in list(_listeners):
        listener(tuple(_running))


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def wanted(stream: Any = None) -> bool:
    """Whether to show a spinner: forced by the environment, else only on a terminal that can draw one."""
    setting = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


class _Line:
    """What the spinner shows, rendered afresh at every refresh: the innermost stage and its time."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.stages: list[tuple[str, float]] = []

    def update(self, running: tuple[str, ...]) -> None:
        """Stages still running keep their start (an outer stage's time goes on across its inner ones)."""
        kept = 0
        while kept < min(len(self.stages), len(running)) and self.stages[kept][0] == running[kept]:
            kept += 1
        now = time.perf_counter()
        self.stages = self.stages[:kept] + [(name, now) for name in running[kept:]]

    def text(self) -> str:
        if not self.stages:
            return self.title
        name, start = self.stages[-1]
        return f"{self.title}: {name}  {time.perf_counter() - start:.1f} s"

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(self.text())


def spinner(title: str, enabled: bool = True) -> AbstractContextManager[Any]:
    """A spinner on stderr naming the running stage while the block runs (nothing unless ``wanted()``)."""
    if not (enabled and wanted()):
        return nullcontext()
    return _spinning(title)


@contextmanager
def _spinning(title: str) -> Iterator[_Line]:
    """What is printed meanwhile goes above the spinner; stdout only when it is the terminal too (a
    redirected stdout keeps what the user's code prints)."""
    from rich.console import Console
    from rich.live import Live
    from rich.spinner import Spinner

    line = _Line(title)
    console = Console(file=sys.stderr, force_terminal=True, markup=False, highlight=False, emoji=False)
    live = Live(Spinner("dots", text=line), console=console, transient=True, refresh_per_second=8,
                redirect_stdout=sys.stdout.isatty(), redirect_stderr=True)
    with live, listening(line.update):
        yield line
