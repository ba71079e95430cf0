"""The checkpoint side of a resumable training run, shared by ADMM and recovery training.

``open_run`` claims the checkpoint directory (refusing another run's, or clearing it with overwrite) and
records the run's identity, which a resume must match; ``save_run`` writes a checkpoint on rank 0 with
every rank's RNG state. The fingerprint is taken after the claim and the barrier, so every rank has looked
at the directory before rank 0 writes, and before any RNG is seeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from graphprune.training import checkpoint as ckpt
from graphprune.training import distributed as D
from graphprune.training.identity import run_identity


def open_run(path: Path, *, resume: bool, overwrite: bool, dist: Any, settings: dict[str, Any],
             module: nn.Module, constrained: list[str], example_inputs: Any,
             fingerprint: Callable[[], dict[str, Any]]) -> tuple[bool, dict[str, Any]]:
    """(whether to resume, the run's identity)."""
    resuming = ckpt.claim_directory(path.parent, resume=resume, overwrite=overwrite, main=dist.main)
    D.barrier(dist)  # every rank has looked before rank 0 writes the first record
    return resuming, run_identity(settings, module, constrained, example_inputs, fingerprint())


def save_run(path: Path, dist: Any, payload: dict[str, Any]) -> None:
    """``payload`` plus every rank's RNG state, written by rank 0 (a collective: every rank calls it)."""
    rng = D.all_gather_object(ckpt.rng_state(), dist)
    if dist.main:
        ckpt.save_checkpoint(path, {**payload, "rng": rng})
