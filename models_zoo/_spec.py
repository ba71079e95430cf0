"""A spec string's form (``location:name``) and the refusals that need no model library.

Why apart from the loader: the command line checks a spec before it imports torch, so a typo in
``zoo:NAME`` or a spec with an empty part is refused at once, with the same message ``load`` gives.
A spec without a namespace is left to ``load``: its suggestions come from torchvision's names.
"""

from __future__ import annotations

from graphprune.errors import UnknownModelError
from models_zoo._catalog import ZOO_PREFIX, zoo_names
from models_zoo._suggest import unknown

SPEC_FORMS = "zoo:NAME, torchvision:NAME, timm:NAME, package.module:factory or path/to/file.py:factory"


def malformed(spec: object, hint: str = "") -> UnknownModelError:
    return UnknownModelError(f"malformed model spec '{spec}': expected {SPEC_FORMS}{hint}")


def split_spec(spec: object) -> tuple[str, str] | None:
    """``(location, name)`` of ``location:name``; None without a ``:``; refuses an empty part."""
    if not isinstance(spec, str) or ":" not in spec:
        return None
    location, _, name = spec.rpartition(":")
    if not location or not name:
        raise malformed(spec)
    return location, name


def unknown_zoo(spec: str, name: str) -> UnknownModelError:
    return unknown(spec, "in-repo model", name, zoo_names(), f"{ZOO_PREFIX}:")


def check_spec(spec: str) -> None:
    """Refuse what can be refused without building anything or importing torch: an empty part, and a
    ``zoo:`` name the catalog does not have. Everything else is checked by ``load``."""
    parts = split_spec(spec)
    if parts is not None and parts[0] == ZOO_PREFIX and parts[1] not in zoo_names():
        raise unknown_zoo(spec, parts[1])
