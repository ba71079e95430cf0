"""Model zoo for graphprune: one spec string names any model the CLI, benchmarks or tests use.

Why: pruning is only trustworthy if it is exercised on many architectures. This package resolves
``zoo:NAME`` (small in-repo models, each built to stress one part of channel-dependency analysis),
``torchvision:NAME`` and ``timm:NAME`` (randomly initialised, never downloaded), and user models
given as ``package.module:factory`` or ``path/to/file.py:factory``, always returning the model in
eval mode with deterministic example inputs.
"""

from __future__ import annotations

from models_zoo._catalog import ZooEntry, ZooSource, catalog, catalog_sources
from models_zoo._loader import load

__all__ = ["ZooEntry", "ZooSource", "catalog", "catalog_sources", "load"]
