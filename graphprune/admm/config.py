"""ADMM run settings (the plan's ``[admm]`` table) and their validation.

Periods (``update_every``, ``checkpoint_every``) are an integer N (every N steps) or a string
``"N epoch(s)"`` (N may be a fraction: ``"0.5 epoch"``) / ``"N step(s)"``; they are resolved to steps once
the data's steps per epoch are known. Progressive
targets must rise and end at the final sparsity (a shorter list gets the final target appended).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from graphprune.errors import InputError

Period = int | str
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(epochs?|steps?)\s*$")


@dataclass(frozen=True)
class AdmmConfig:
    sparsity: float = 0.5  # final target (fraction of each constrained group's / tensor's blocks removed)
    structure: str = "group"  # group | filter | channel | shape | irregular | "N:M" | combinations with "+"
    progressive: tuple[float, ...] = ()  # rising intermediate targets, each an ADMM + retrain step
    rho: float = 0.03  # initial penalty, reset at every progressive step (docs/admm.md: "ρ defaults")
    rho_growth: float = 1.3  # multiplied in after every Z/U update ...
    rho_max: float = 1.0  # ... up to this cap
    update_every: Period = "1 epoch"  # W-step length between Z/U updates
    iterations: int = 10  # Z/U updates per progressive step
    update_z: bool = True  # False (an ablation): Z stays the first projection of each step, only U and rho move
    retrain_epochs: float = 5  # masked retraining after each hard prune
    recalibrate_bn: int = 20  # batches to recompute BatchNorm statistics on after each hard prune (0: off)
    lr: float = 0.01  # default optimizer: SGD(lr, momentum, weight_decay)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    checkpoint_dir: str | None = None  # checkpoint.pt and metrics.jsonl go here
    checkpoint_every: Period = "1 epoch"
    resume: bool = False  # continue from checkpoint_dir/checkpoint.pt when it exists
    overwrite: bool = False  # a fresh run may delete the checkpoint and metrics already in checkpoint_dir
    log_every: int = 10  # steps between metric records (always at updates, epochs and phase ends)
    progress: bool = True
    device: str | None = None  # None: cuda when available (the local rank's GPU under torchrun), else cpu

    def __post_init__(self) -> None:
        object.__setattr__(self, "progressive", tuple(float(t) for t in self.progressive))
        self.targets()
        from graphprune.admm.constraints import check_structure

        check_structure(self.structure)
        for key in ("rho", "rho_max", "lr"):
            if not isinstance(getattr(self, key), (int, float)) or getattr(self, key) <= 0:
                raise InputError(f"admm.{key}: expected a positive number, got {getattr(self, key)!r}")
        if not isinstance(self.rho_growth, (int, float)) or self.rho_growth < 1:
            raise InputError(f"admm.rho_growth: expected a number >= 1, got {self.rho_growth!r}")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise InputError(f"admm.iterations: expected a positive integer, got {self.iterations!r}")
        if not isinstance(self.retrain_epochs, (int, float)) or self.retrain_epochs < 0:
            raise InputError(f"admm.retrain_epochs: expected a number >= 0, got {self.retrain_epochs!r}")
        for key in ("update_every", "checkpoint_every"):
            steps_of(getattr(self, key), 1, f"admm.{key}")
        if self.resume and self.overwrite:
            raise InputError("admm: resume and overwrite exclude each other (continue the run in checkpoint_dir, "
                             "or delete it and start afresh)")

    def targets(self) -> tuple[float, ...]:
        """Sparsity of every progressive step, ending with ``sparsity``."""
        final = self.sparsity
        if not isinstance(final, (int, float)) or math.isnan(final) or not 0 <= final < 1:
            raise InputError(f"admm.sparsity: expected a number in [0, 1), got {final!r}")
        steps = list(self.progressive)
        if steps and steps[-1] > final:
            raise InputError(f"admm.progressive: {steps} goes past the final sparsity {final}")
        if any(not 0 <= t < 1 for t in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise InputError(f"admm.progressive: expected rising sparsities in [0, 1), got {steps}")
        if not steps or steps[-1] < final:
            steps.append(float(final))
        return tuple(steps)

    def trajectory(self) -> dict[str, Any]:
        """The settings a resumed run must share with the checkpoint (everything that changes the numbers)."""
        keep = ("sparsity", "structure", "progressive", "rho", "rho_growth", "rho_max", "update_every",
                "iterations", "update_z", "retrain_epochs", "recalibrate_bn", "lr", "momentum", "weight_decay", "seed")
        d = asdict(self)
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in keep}


def steps_of(period: Period, steps_per_epoch: int, key: str = "period") -> int:
    """A period in steps (at least one)."""
    if isinstance(period, bool):
        raise InputError(f"{key}: expected a number of steps or a string like '1 epoch' / '200 steps', "
                         f"got {period!r}")
    if isinstance(period, int):
        if period < 1:
            raise InputError(f"{key}: expected a positive number of steps, got {period}")
        return period
    match = _PERIOD.match(str(period))
    if not match:
        raise InputError(f"{key}: expected a number of steps or a string like '1 epoch' / '200 steps', "
                         f"got {period!r}")
    value, unit = float(match.group(1)), match.group(2)
    steps = value * steps_per_epoch if unit.startswith("epoch") else value
    if steps < 1 and value > 0:
        steps = 1
    if steps < 1:
        raise InputError(f"{key}: must be positive, got {period!r}")
    return int(round(steps))
