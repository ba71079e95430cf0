"""Who turns a plan's ``[data]`` table into training and validation batches: a loader the application
registers.

Why a registry: the built-in datasets, image folders and user factories a ``[data]`` table names live
in the model zoo (``models_zoo.userdata``), above the core, and the core does not import the zoo.
Importing ``models_zoo`` registers its loader (the command line does; so does any script that loads a
``zoo:`` model); a Python caller may register another, or pass ``data=`` to ``graphprune.compile``.
A ``[data]`` table with no loader registered is a plan error that says so. Imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphprune.errors import PlanError

# (options of the [data] table, model, example inputs, error(key, message) -> the located PlanError) -> Data
DataLoader = Callable[[dict[str, Any], Any, tuple[Any, ...], Callable[[str, str], PlanError]], Any]
_LOADERS: list[DataLoader] = []


def register_data_loader(loader: DataLoader) -> None:
    """Make ``loader`` the one that resolves ``[data]`` tables (the latest registration wins)."""
    _LOADERS.append(loader)


def plan_data(plan: Any, model: Any, inputs: tuple[Any, ...]) -> Any:
    """The plan's ``[data]`` resolved by the registered loader (``graphprune.training.datasets.Data``),
    or None when the plan has no ``[data]``."""
    if plan.data is None:
        return None
    if not _LOADERS:
        raise plan.error("data", "no loader for [data] tables is registered: import models_zoo (its loader "
                                 "reads built-in datasets, image folders and factories) or pass data= to "
                                 "graphprune.compile")
    return _LOADERS[-1](dict(plan.data), model, inputs, plan.error)
