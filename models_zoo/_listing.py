"""Every model a spec can name, with its example input shape, read from metadata: nothing is built.

Why: ``graphprune zoo PATTERN`` answers "what can I name, and what does it take?" in the time it takes
to import the model libraries. Shapes come from where the loader takes them: the zoo catalog, the
torchvision family tables (``models_zoo._torchvision``) and timm's pretrained config.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from models_zoo._catalog import catalog

WILDCARDS = "*?["


@dataclass(frozen=True)
class Listed:
    spec: str
    input_shape: str  # "1x3x224x224"; a detection model's one image in a list: "[3x224x224]"; "?" unknown
    note: str = ""


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if not shape else "x".join(map(str, shape))


def _zoo() -> Iterator[Listed]:
    for entry in catalog():
        yield Listed(entry.name, _shape(entry.input_shape), "in-repo")


def _torchvision(torchvision: ModuleType) -> Iterator[Listed]:
    from models_zoo import _torchvision as tv

    for family, name in tv.by_family(torchvision):
        shape = _shape(tv.input_shape(family, name))
        note = family.name + ("" if family.whole else f" (prune a part: {tv.DETECTION_HINT})")
        yield Listed(f"torchvision:{name}", f"[{shape}]" if family.name == "detection" else shape, note)


def _timm(timm: ModuleType) -> Iterator[Listed]:
    for name in timm.list_models():
        cfg = timm.models.get_pretrained_cfg(name)
        shape = (1, *cfg.input_size) if cfg is not None and cfg.input_size else None
        fixed = cfg is not None and cfg.fixed_input_size
        yield Listed(f"timm:{name}", _shape(shape), "fixed size (--input-size rebuilds it)" if fixed else "")


def _hf(transformers: ModuleType) -> Iterator[Listed]:
    from models_zoo import hf

    for name, entry in hf.ENTRIES.items():
        yield Listed(f"hf:{name}", _shape(hf.INPUT_SHAPES[entry.inputs]), f"transformers {entry.model}, small config")


def _optional(package: str) -> ModuleType | None:
    try:
        return importlib.import_module(package)
    except ImportError:
        return None


def matches(pattern: str, spec: str) -> bool:
    """A glob (``timm:resnet*``, ``*vit*``) matches the whole spec or the name after the namespace; a
    plain word matches as a substring. Case does not matter."""
    pattern, spec = pattern.lower(), spec.lower()
    if not any(c in pattern for c in WILDCARDS):
        return pattern in spec
    name = spec.split(":", 1)[-1]
    return fnmatch.fnmatchcase(spec, pattern) or fnmatch.fnmatchcase(name, pattern)


def listing(pattern: str) -> tuple[list[Listed], list[str]]:
    """The models matching ``pattern`` in catalog, torchvision and timm order, and the namespaces that
    could not be listed because their package is not installed."""
    found = [m for m in _zoo() if matches(pattern, m.spec)]
    missing = []
    for package, entries in (("torchvision", _torchvision), ("timm", _timm), ("transformers", _hf)):
        module = _optional(package)
        if module is None:
            missing.append(package)
        else:
            found += [m for m in entries(module) if matches(pattern, m.spec)]
    return found, missing
