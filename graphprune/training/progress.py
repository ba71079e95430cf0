"""What a running job shows and records: a tqdm progress bar and a JSON-lines metrics log.

The log is append-only, one record per line and flushed at once, so a killed run leaves every line it
wrote. On resume the records past the checkpoint's step are dropped first: the resumed run writes them
again, and the file reads as if the run had never stopped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from graphprune.io import atomic_write_text


class MetricsLog:
    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self.records: list[dict[str, Any]] = []
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def rewind(self, step: int) -> None:
        """Keep only the records of steps <= ``step`` (the checkpoint being resumed)."""
        if not self.path or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if record.get("step", 0) <= step:
                kept.append(record)
        self.records = kept
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


class Progress:
    """A progress bar over the run's total steps; silent when disabled (tests, non-main ranks)."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str = "admm") -> None:
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr, leave=True)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def note(self, text: str) -> None:
        """One line on stderr above the bar (where the run resumes from, ...); silent when disabled."""
        if self.enabled:
            tqdm.write(text, file=sys.stderr)

    def show(self, **values: Any) -> None:
        self.bar.set_postfix({k: _short(v) for k, v in values.items() if v is not None}, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"
    return str(value)
