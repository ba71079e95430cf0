"""Two gloo ranks on CPU (each half of every global batch) end with the masks and, up to float rounding of
the gradient average, the weights of one process on the whole batch; Z/U stay identical across ranks
(same masks, bitwise-equal weights) and only rank 0 writes the metrics log and checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.admm_job import ddp_worker, mlp_job

pytestmark = pytest.mark.usefixtures("single_thread")


def test_two_gloo_ranks_match_one_process(tmp_path: Path):
    single = mlp_job()
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, tensor in ranks[0]["state"].items():
        assert torch.equal(ranks[1]["state"][name], tensor), name  # DDP keeps the ranks bitwise in sync
        torch.testing.assert_close(tensor, single["state"][name], rtol=1e-4, atol=1e-5)
    for name, mask in single["masks"].items():
        assert torch.equal(ranks[0]["masks"][name], mask) and torch.equal(ranks[1]["masks"][name], mask), name
    assert torch.equal(ranks[0]["keep"], single["keep"])
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["event"], r["step"]) for r in records]
    assert len(steps) == len(set(steps)) and steps[-1] == ("done", 3 * 4 + 2 * 4)  # one writer
    assert (tmp_path / "ddp" / "checkpoint.pt").exists()
