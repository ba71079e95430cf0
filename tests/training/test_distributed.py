"""Recovery training on two gloo ranks (each half of every global batch, distilling the dense model on its
half) ends with the weights of one process on the whole batch, up to float rounding of the gradient
average; the ranks stay bitwise in sync and only rank 0 evaluates and writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.finetune_job import ddp_worker, mlp_job

pytestmark = pytest.mark.usefixtures("single_thread")


def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    single = mlp_job()
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert single["state"], "nothing trained"
    for name, tensor in ranks[0]["state"].items():
        assert torch.equal(ranks[1]["state"][name], tensor), name
        torch.testing.assert_close(tensor, single["state"][name], rtol=1e-4, atol=1e-5)
    assert ranks[0]["accuracy"]["recovered"]["acc"] == pytest.approx(single["accuracy"]["recovered"]["acc"])
    assert ranks[1]["accuracy"] == {"dense": None, "pruned": None, "recovered": None}
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["event"], r["step"]) for r in records]
    assert len(steps) == len(set(steps)) and steps[-1] == ("done", 8)  # one writer; 2 epochs of 4 global batches
    assert (tmp_path / "ddp" / "checkpoint.pt").exists()
