"""``graphprune.plan.data``: the core does not import the zoo, so a plan's ``[data]`` table reaches the
zoo's loader through a registration; without one the table is a located plan error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
import models_zoo  # noqa: F401  (registers its [data] loader)
from graphprune.errors import PlanError
from graphprune.plan import data as plan_data


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


def test_a_data_table_without_a_registered_loader_is_a_located_plan_error(monkeypatch) -> None:
    monkeypatch.setattr(plan_data, "_LOADERS", [])
    with pytest.raises(PlanError, match=r"^plan: data: no loader for \[data\] tables is registered: import models_zoo"):
        graphprune.compile(Tiny(), torch.randn(1, 3, 8, 8), plan={"sparsity": 0.5, "data": {"name": "digits"}})


def test_the_zoos_registered_loader_reads_the_data_table() -> None:
    """``models_zoo`` registered on import: a built-in dataset by name, and a bad name located in the plan."""
    plan = graphprune.plan.load_plan({"sparsity": 0.5, "data": {"name": "digits", "batch_size": 16}})
    data = plan_data.plan_data(plan, Tiny(), (torch.randn(1, 3, 8, 8),))
    x, y = next(iter(data.train))
    assert x.shape == (16, 3, 8, 8) and data.record["source"] == "digits"
    with pytest.raises(PlanError, match=r"^plan: data.name: unknown dataset 'digitz'"):
        plan_data.plan_data(graphprune.plan.load_plan({"data": {"name": "digitz"}}), Tiny(), (torch.randn(1, 3, 8, 8),))
