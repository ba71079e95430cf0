"""Timing a pruned model against the dense one in a fresh Python process.

Why: a model's time depends on the process it runs in, not only on its graph and weights. The process
that compiled a model holds the dense model, its copies and the compile's garbage; glibc's allocator then
serves a forward's activations from a heap that is never trimmed, while a lean process (a fresh one, an
inference server) gets them from pages it trims and faults in again on every call. On mobilenet_v2 at
batch 1 that moved the dense model from 16-19 ms to 26-30 ms and the measured fraction of a pruned one
from 0.51 (in the compiling process) to 0.35 (fresh), measured; fixing the allocator's thresholds
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) brought the fresh process back to the compiling
one's figures. A latency budget is a promise about the returned model wherever it runs next, so the loop
times each candidate in a fresh process, as the check after compile does. Where the models cannot be
loaded by another process (a class defined in ``__main__``, an attribute pickle refuses) it times them
in this process and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphprune.loading import save_pt

TIMEOUT_S = 900


class FreshProcessTimer:
    """``timer(pruned, pruned_args)``: the measured fraction from a fresh process, or None (``reason``
    says why) when the models cannot be handed to one. The dense model is written once per compile."""

    def __init__(self, dense: nn.Module, dense_args: tuple[Any, ...], kwargs: dict[str, Any] | None,
                 threads: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="graphprune-latency-")
        self.threads = threads
        self.reason = ""
        self.last_pid: int | None = None  # the process that measured last (a test reads it)
        try:
            torch.save({"model": dense, "args": dense_args, "kwargs": kwargs or {}}, self._path("dense.pt"))
        except Exception as exc:  # noqa: BLE001 - any refusal of pickle means: measure here
            self.reason = f"the dense model cannot be saved for another process ({_first_line(exc)})"

    @property
    def measured_in(self) -> str:
        """Where the candidates were timed, for the report."""
        return f"the compiling process ({self.reason})" if self.reason else "a fresh process"

    def _path(self, name: str) -> str:
        return str(Path(self._dir.name) / name)

    def __call__(self, pruned: nn.Module, pruned_args: tuple[Any, ...]) -> float | None:
        if self.reason:
            return None
        try:
            save_pt(pruned, self._path("pruned.pt"))
            torch.save(pruned_args, self._path("pruned_args.pt"))
        except Exception as exc:  # noqa: BLE001
            self.reason = f"the pruned model cannot be saved for another process ({_first_line(exc)})"
            return None
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads),
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
        done = subprocess.run([sys.executable, "-m", "graphprune.latency_process", self._dir.name, str(self.threads)],
                              capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            error = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            self.reason = f"the fresh process could not time the models ({error})"
            return None
        measured = json.loads(lines[-1])
        self.last_pid = int(measured["pid"])
        return float(measured["fraction"])

    def close(self) -> None:
        self._dir.cleanup()


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:160]}"


def _measure(directory: str, threads: int) -> dict[str, Any]:
    from graphprune.latency import measured_fraction

    dense = torch.load(os.path.join(directory, "dense.pt"), weights_only=False)
    pruned = torch.load(os.path.join(directory, "pruned.pt"), weights_only=False)
    args = torch.load(os.path.join(directory, "pruned_args.pt"), weights_only=False)
    model, dense_args, kwargs = dense["model"], dense["args"], dense["kwargs"]
    fraction = measured_fraction(lambda: model(*dense_args, **kwargs), lambda: pruned(*args), [model, pruned],
                                 num_threads=threads)
    return {"fraction": fraction, "pid": os.getpid()}


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]))))
