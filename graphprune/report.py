"""The compile report: what changed, by how much, and why some channels could not be touched.
``to_dict()`` is JSON-able and its top-level keys are part of the published surface."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graphprune.io import atomic_write_text


@dataclass
class LayerWidth:
    name: str
    kind: str
    before: int
    after: int


@dataclass
class Report:
    model: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    groups: int
    prunable_groups: int
    frozen: list[dict[str, Any]]
    unknown_ops: list[dict[str, str]]
    inexact: list[dict[str, Any]]
    kept: dict[str, dict[int, list[int]]]
    passes: list[str]
    seconds: dict[str, float]
    options: dict[str, Any]
    layers: list[LayerWidth] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)  # the validated plan, every default spelled out
    schedule: list[dict[str, Any]] = field(default_factory=list)  # per pass run: pass, why, seconds, fingerprint
    budget: dict[str, Any] | None = None  # metric, asked, estimated (cost model), achieved (measured)
    artifacts: dict[str, Any] = field(default_factory=dict)  # per-pass records (allocate, purify, emit, ...)
    tied: list[list[str]] = field(default_factory=list)  # names of one shared tensor, canonical first
    warnings: list[str] = field(default_factory=list)  # what the user should know (nothing to prune, ...)
    inputs: list[dict[str, Any] | None] = field(default_factory=list)  # per traced input: shape, dtype (or None)

    @property
    def macs_reduction(self) -> float | None:
        """dense / pruned MACs; None when either count is 0 (no ratio means anything then)."""
        return _ratio(self.macs_before, self.macs_after)

    @property
    def params_reduction(self) -> float | None:
        return _ratio(self.params_before, self.params_after)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_reduction"] = self.macs_reduction
        d["params_reduction"] = self.params_reduction
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_json())


def _ratio(before: int, after: int) -> float | None:
    return before / after if before > 0 and after > 0 else None
