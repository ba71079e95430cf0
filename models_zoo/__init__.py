"""Model zoo for graphprune: one spec string names any model the CLI, benchmarks or tests use.

Why: pruning is only trustworthy if it is exercised on many architectures. This package resolves
``zoo:NAME`` (small in-repo models, each built to stress one part of channel-dependency analysis),
``torchvision:NAME`` and ``timm:NAME`` (randomly initialised, never downloaded), and user models
given as ``package.module:factory`` or ``path/to/file.py:factory``, always returning the model in
eval mode with deterministic example inputs.

Importing the package imports no torch: ``load`` (which builds models) is imported on first use, so
the command line lists the catalog and refuses a bad spec (``check_spec``) before torch is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from graphprune.plan.data import register_data_loader
from models_zoo._catalog import ZooEntry, ZooSource, catalog, catalog_sources
from models_zoo._spec import check_spec

__all__ = ["ZooEntry", "ZooSource", "catalog", "catalog_sources", "check_spec", "load"]


def _load_plan_data(options: dict[str, Any], model: Any, inputs: tuple[Any, ...], error: Any) -> Any:
    """A plan's ``[data]`` table (``models_zoo.userdata``, imported when a plan has one: it needs torch)."""
    from models_zoo.userdata import load_plan_data

    return load_plan_data(options, model, inputs, error)


register_data_loader(_load_plan_data)  # the core reads [data] tables through it (graphprune.plan.data)


def __getattr__(name: str) -> Any:
    if name == "load":
        from models_zoo._loader import load

        globals()["load"] = load
        return load
    try:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule used as an attribute
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
