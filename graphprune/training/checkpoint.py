"""Training checkpoints: written atomically, read back with a clear error when they are not readable.

Why atomic: a run killed while saving must leave the previous complete checkpoint in place (the write
goes to a temporary file beside it and is renamed). Why RNG states: dropout, augmentation and any
other randomness must continue exactly where the killed run stopped. Checkpoints are loaded with
``weights_only=True`` (no arbitrary code runs), so every value in them is a tensor or a plain
Python value. Each also records its run's identity (``graphprune.training.identity``): a resume with
another plan, model, input size or dataset is refused naming the first difference, and a fresh run
never writes into a directory that holds another run's files (``claim_directory``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphprune.errors import CheckpointError
from graphprune.io import atomic_write
from graphprune.training.identity import first_difference

FORMAT = "graphprune-checkpoint/1"
CHECKPOINT, METRICS = "checkpoint.pt", "metrics.jsonl"
RUN_FILES = (CHECKPOINT, METRICS)
FRESH = "use its settings, another checkpoint_dir, or overwrite (--overwrite)"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint

    atomic_write(Path(path), write)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, unpickling refusal: all the same to the user
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); it is corrupt or not a "
                              f"graphprune checkpoint: delete it to start the run over") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} is not a graphprune training checkpoint "
                              f"(format {found!r}, expected {FORMAT!r})")
    return payload


def check_resumable(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume from a checkpoint of another run, naming the first difference in one line."""
    if not isinstance(saved, dict) or "settings" not in saved:
        raise CheckpointError(f"cannot resume from {path}: it was written by an older graphprune that did not "
                              f"record its model and data; {FRESH}")
    difference = first_difference(saved, current)
    if difference:
        raise CheckpointError(f"cannot resume from {path}: {difference}; {FRESH}")


def claim_directory(directory: Path, *, resume: bool, overwrite: bool, main: bool) -> bool:
    """Make ``directory`` ready for a run; True when it holds a checkpoint to resume from.

    Why: a fresh run into another run's directory would replace that run's checkpoint and append to its
    metrics. It is refused unless ``overwrite`` (then the old files are deleted, by the main rank only).
    ``resume`` with no checkpoint starts afresh and clears a metrics log the killed run left behind."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"checkpoint_dir {directory} is not a directory")
    if resume and (directory / CHECKPOINT).exists():
        return True
    found = [name for name in RUN_FILES if (directory / name).exists()]
    if found and not (resume or overwrite):
        raise CheckpointError(f"checkpoint_dir {directory} already holds a run ({', '.join(found)}): resume it "
                              f"with --resume (resume = true), choose another checkpoint_dir, or replace it "
                              f"with --overwrite (overwrite = true)")
    if main:
        for name in found:
            (directory / name).unlink(missing_ok=True)
    return False


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from: torch CPU and CUDA, NumPy and Python's ``random``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
