"""The import graph (function-local imports included) has no cycle, and the core does not import the
zoo: a plan's ``[data]`` table reaches the zoo's loader through a registration (``graphprune.plan.data``)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest
import torch
from torch import nn

import graphprune
import models_zoo  # noqa: F401  (registers its [data] loader)
from graphprune.errors import PlanError
from graphprune.plan import data as plan_data

ROOT = Path(__file__).resolve().parents[1]
APPLICATION = ("graphprune.cli", "graphprune.cli_commands", "graphprune.cli_compile", "graphprune.cli_render")


def _modules() -> dict[str, Path]:
    mods = {}
    for f in [*ROOT.glob("graphprune/**/*.py"), *ROOT.glob("passes/**/*.py"), *ROOT.glob("models_zoo/**/*.py")]:
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _import_graph() -> nx.DiGraph:
    """Module -> every module it imports anywhere in its source (the longest known prefix of each name)."""
    mods, g = _modules(), nx.DiGraph()

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in mods.items():
        g.add_node(module)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base] * bool(base))
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            for target in filter(None, map(known, names)):
                if target != module:
                    g.add_edge(module, target)
    return g


def test_no_import_cycle() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(_import_graph()) if len(c) > 1]
    assert cycles == []


def test_the_core_imports_no_zoo() -> None:
    g = _import_graph()
    core = [(a, b) for a, b in g.edges if a.split(".")[0] == "graphprune" and b.split(".")[0] == "models_zoo"
            and a not in APPLICATION]
    assert core == []


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
