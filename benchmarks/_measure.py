"""Shared measurement helpers for the scripts in ``benchmarks/``.

Everything here is deliberately free of graphprune imports so that a benchmark can still run (and
report "n/a") while the package is incomplete.  ``torch`` is imported lazily for the same reason:
the orchestrating parent process of a benchmark should stay small, because on Linux the peak RSS
of a child started by fork/exec starts at the parent's high-water mark.

Memory numbers are in MiB ("MB" in the tables).  They come from ``/proc/self/status`` where it
exists (Linux) and from :func:`resource.getrusage` otherwise.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

RESULT_MARKER = "@@BENCH-RESULT@@ "

# ru_maxrss is in KiB on Linux, in bytes on macOS.
_MAXRSS_TO_MB = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024


# --------------------------------------------------------------------------------------------------
# memory


def _proc_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far: ``getrusage(RUSAGE_SELF).ru_maxrss``."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_TO_MB


def current_rss_mb() -> float:
    """Resident set size right now (``VmRSS``); falls back to the peak where /proc is missing."""
    kb = _proc_status_kb("VmRSS")
    return kb / 1024 if kb is not None else peak_rss_mb()


def settle_memory() -> None:
    """Collect garbage and give freed heap back to the OS (glibc only), so that a following RSS
    reading reflects live data rather than allocator slack."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (``VmHWM``, which ``ru_maxrss`` reports) to the
    current RSS, so that a later :func:`peak_rss_mb` covers only what happens afterwards.

    Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``.  Returns False where that is unavailable; the
    peak then also includes whatever happened earlier in the process (imports, model construction).
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# model statistics


@contextmanager
def _mha_fastpath_disabled():
    """nn.MultiheadAttention's inference fast path (taken under no_grad in eval mode) runs a fused
    kernel that FlopCounterMode cannot see into; turn it off while counting."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    old = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(old)


def _first_tensor(out: Any):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return getattr(out, "logits", None)


def forward_stats(model, inputs: Sequence[Any]) -> dict[str, Any]:
    """One real forward pass under ``torch.no_grad`` and ``FlopCounterMode``.

    Returns ``macs`` (= counted FLOPs / 2), ``out_shape`` (shape of the first output tensor, as a
    list) and ``params`` (number of parameters).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), _mha_fastpath_disabled(), counter:
        out = model(*inputs)
    t = _first_tensor(out)
    return {
        "macs": counter.get_total_flops() // 2,
        "out_shape": list(t.shape) if t is not None else None,
        "params": sum(p.numel() for p in model.parameters()),
    }


# --------------------------------------------------------------------------------------------------
# timing and child processes


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall, perf_counter) and ``sw.cpu_seconds``."""

    seconds: float = float("nan")
    cpu_seconds: float = float("nan")  # this process's CPU time (all threads), less sensitive to load

    def __enter__(self):
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._c0


def median(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def emit_result(result: dict[str, Any]) -> None:
    """Child side: print the result as one marked JSON line on stdout (libraries may print too)."""
    sys.stdout.write(RESULT_MARKER + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def run_child(cmd: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Parent side: run ``cmd`` in a fresh process and return the dict it :func:`emit_result`-ed.

    Never raises for a failing child: a crash, a timeout or missing output comes back as
    ``{"status": "error", "error": ...}`` with the tail of stderr.
    """
    try:
        proc = subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timeout after {timeout:.0f}s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    if log is not None:
        log("\n".join(tail))
    last = tail[-1] if tail else ""
    return {"status": "error", "error": f"child exited with code {proc.returncode}: {last}"}
