"""Training checkpoints: written atomically, read back with a clear error when they are not readable.

Why atomic: a run killed while saving must leave the previous complete checkpoint in place (the write
goes to a temporary file beside it and is renamed). Why RNG states: dropout, augmentation and any
other randomness must continue exactly where the killed run stopped. Checkpoints are loaded with
``weights_only=True`` (no arbitrary code runs), so every value in them is a tensor or a plain
Python value.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphprune.errors import GraphpruneError
from graphprune.io import atomic_write

FORMAT = "graphprune-checkpoint/1"


class CheckpointError(GraphpruneError):
    """A checkpoint cannot be read, is not ours, or belongs to a different run configuration."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(Path(path), lambda tmp: torch.save({"format": FORMAT, **payload}, tmp))


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


def check_same_run(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a run whose trajectory-defining settings changed."""
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)
        raise CheckpointError(f"checkpoint {path} was written by a different run ({detail}); resume with the "
                              f"same settings or use another checkpoint_dir")


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
