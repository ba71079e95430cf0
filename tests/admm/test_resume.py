"""A run SIGKILLed twice (mid-ADMM, then mid-retraining) and resumed ends with exactly the weights, masks
and metrics log of an uninterrupted run with the same seed. The two killed legs run as subprocesses
(``tests/admm_job.py``); each leg resumes from the last checkpoint in the shared directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.admm_job import job

pytestmark = pytest.mark.usefixtures("single_thread")
JOB = Path(__file__).resolve().parents[1] / "admm_job.py"


def run_job(ckdir: Path, out: Path, kill_at: int | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, str(JOB), str(ckdir), str(out)] + ([str(kill_at)] if kill_at else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path: Path):
    reference = job(str(tmp_path / "reference"))
    ckdir, out = tmp_path / "killed", tmp_path / "final.pt"
    # steps: 1-8 ADMM (0.3), 9-12 retrain, 13-20 ADMM (0.5), 21-24 retrain; checkpoints every 3 steps
    for kill_at in (7, 23):
        proc = run_job(ckdir, out, kill_at)
        assert proc.returncode == -9, proc.stderr[-2000:]
        assert not out.exists()
    resumed = job(str(ckdir))  # the last leg in-process: same code path, one interpreter start fewer
    for name, tensor in reference["state"].items():
        assert torch.equal(resumed["state"][name], tensor), name
    for name, mask in reference["masks"].items():
        assert torch.equal(resumed["masks"][name], mask), name
    assert torch.equal(resumed["keep"], reference["keep"])
    assert (ckdir / "metrics.jsonl").read_text() == (tmp_path / "reference" / "metrics.jsonl").read_text()
