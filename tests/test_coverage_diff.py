"""The redesign's behaviour evidence (docs/results/redesign/) and the tool that reads it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import coverage_diff  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "redesign"


@pytest.mark.parametrize("source", ["tv", "timm"])
def test_the_redesign_changed_no_models_outcome(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    before, after = RESULTS / f"coverage_{source}_d0cb581.jsonl", RESULTS / f"coverage_{source}_e2e0774.jsonl"
    assert coverage_diff.main([str(before), str(after)]) == 0
    models = len(coverage_diff.load(str(before)))
    assert models >= 80 and f"{models} models compared: {models} identical" in capsys.readouterr().out


def test_a_changed_mac_count_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in (RESULTS / "coverage_tv_d0cb581.jsonl").read_text().splitlines()]
    rows[3]["macs_after"] += 1
    changed = tmp_path / "after.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert coverage_diff.main([str(RESULTS / "coverage_tv_d0cb581.jsonl"), str(changed)]) == 1
    assert f"{rows[3]['model']}: {{'macs_after'" in capsys.readouterr().out
