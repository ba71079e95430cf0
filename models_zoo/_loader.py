"""Resolve a model spec string to ``(model in eval mode, example inputs)``.

Why: the CLI, benchmarks and tests all name models by one string, so resolution, default input
shapes and error messages live in one place. Every failure to resolve is an ``UnknownModelError``
whose single-line message names the spec and suggests close matches, so the CLI can print it as is.
Models are built under a fixed seed and example inputs come from a seeded ``torch.Generator``:
the same spec always yields the same weights and inputs, without touching the caller's RNG.
Building a model runs code that is not ours (the user's file and factory, a library's constructor):
whatever it raises becomes one UserCodeError naming the innermost line of that code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch import nn

import models_zoo._torchvision as tv
from graphprune.errors import GraphpruneError, InputError, UnknownModelError, UserCodeError
from models_zoo._catalog import ZOO_PREFIX, zoo_factory, zoo_names
from models_zoo._common import random_inputs, seeded
from models_zoo._spec import malformed, split_spec, unknown_zoo
from models_zoo._submodule import select_submodule
from models_zoo._suggest import unknown as _unknown
from models_zoo._torchvision import DEFAULT_IMAGE_SHAPE, TORCHVISION_INPUT_SIZE  # noqa: F401 (benchmarks)
from models_zoo._user import load_user_factory

Inputs = tuple[torch.Tensor, ...]
Loaded = tuple[nn.Module, Inputs]


# ----------------------------------------------------------------------------------------- helpers


def _import_optional(package: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise UnknownModelError(
            f"cannot load '{spec}': {package} is not installed (pip install 'graphprune[zoo]')"
        ) from exc


def _image_shape(channels: int, size: int) -> tuple[int, int, int, int]:
    return (1, channels, size, size)


def _check_input_size(input_size: int | None) -> None:
    if input_size is not None and (not isinstance(input_size, int) or input_size <= 0):
        raise InputError(f"input_size must be a positive integer, got {input_size!r}")


# ------------------------------------------------------------------------------------- namespaces


def _load_zoo(name: str, spec: str, input_size: int | None) -> Loaded:
    factory = zoo_factory(name)
    if factory is None:
        raise unknown_zoo(spec, name)
    return factory() if input_size is None else factory(input_size=input_size)


def _load_torchvision(name: str, spec: str, input_size: int | None) -> Loaded:
    return tv.load_torchvision(_import_optional("torchvision", spec), name, spec, input_size)


def _timm_create(timm: ModuleType, name: str, spec: str, input_size: int | None) -> nn.Module:
    try:
        cfg = timm.models.get_pretrained_cfg(name)
        fixed_size = cfg is not None and cfg.fixed_input_size
        kwargs = {"img_size": input_size} if input_size is not None and fixed_size else {}
        with seeded():
            return timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Invalid pretrained tag" not in str(exc):
            raise
        arch = name.split(".", 1)[0]
        raise _unknown(spec, "timm pretrained tag", name, timm.list_pretrained(f"{arch}.*"), "timm:") from exc


def _load_timm(name: str, spec: str, input_size: int | None) -> Loaded:
    timm = _import_optional("timm", spec)
    if not timm.is_model(name):
        raise _unknown(spec, "timm model", name, timm.list_models(), "timm:")
    model = _timm_create(timm, name, spec, input_size)
    channels, height, width = model.pretrained_cfg["input_size"]
    shape = _image_shape(channels, input_size) if input_size else (1, channels, height, width)
    return model, random_inputs(shape)


def _load_hf(name: str, spec: str, input_size: int | None) -> Loaded:
    from models_zoo import hf

    transformers = _import_optional("transformers", spec)
    if name not in hf.ENTRIES:
        raise _unknown(spec, "Hugging Face model", name, hf.names(), "hf:")
    if input_size is not None:
        raise InputError(f"cannot load '{spec}': hf: models are built for their example inputs (no --input-size)")
    return hf.build(transformers, name)


NAMESPACES: dict[str, Callable[[str, str, int | None], Loaded]] = {
    ZOO_PREFIX: _load_zoo,
    "torchvision": _load_torchvision,
    "timm": _load_timm,
    "hf": _load_hf,
}


# --------------------------------------------------------------------------------------- public


def _bare_name_candidates() -> dict[str, list[str]]:
    """Bare model name -> the full specs it could mean, for a spec given without a namespace."""
    candidates: dict[str, list[str]] = {name: [f"{ZOO_PREFIX}:{name}"] for name in zoo_names()}
    try:
        import torchvision
    except ImportError:
        return candidates
    for name in tv.names(torchvision):
        candidates.setdefault(name, []).append(f"torchvision:{name}")
    return candidates


def _split(spec: str) -> tuple[str, str]:
    parts = split_spec(spec)
    if parts is None:
        candidates = _bare_name_candidates()
        matches = difflib.get_close_matches(str(spec), list(candidates), n=3, cutoff=0.6)
        specs = [full for match in matches for full in candidates[match]][:3]
        raise malformed(spec, f"; did you mean {', '.join(specs)}?" if specs else "")
    return parts


def _whole_model_error(location: str, name: str, spec: str) -> InputError | None:
    """The refusal for a model that cannot be pruned whole (checked before it is built)."""
    if location != "torchvision":
        return None
    return tv.whole_model_error(_import_optional("torchvision", spec), name, spec)


def _build(location: str, name: str, spec: str, input_size: int | None) -> tuple[nn.Module, tuple[Any, ...]]:
    """Run the code that builds the model; what it raises (not a GraphpruneError) is the model's code
    failing, reported as a UserCodeError naming its file:line."""
    loader = NAMESPACES.get(location)
    try:
        if loader is not None:
            model, inputs = loader(name, spec, input_size)
        else:
            model, inputs = load_user_factory(location, name, spec, input_size)
        return model.eval(), inputs
    except GraphpruneError:
        raise
    except Exception as exc:
        raise UserCodeError.wrap(f"cannot load '{spec}'", exc) from exc


def load(spec: str, input_size: int | None = None, submodule: str | None = None,
         weights: str | None = None) -> Loaded:
    """Build the model a spec names, in eval mode, with deterministic batch-1 example inputs.

    ``input_size`` overrides the spatial size (height = width) of an image or video model's input;
    models built for a fixed size (ViTs, the zoo's VGG) are constructed for it. ``submodule`` (a
    dotted path, e.g. ``backbone``) returns that part of the model with the inputs of its first call
    when the whole model runs; a model that cannot be pruned whole (torchvision detection) needs one.
    ``weights``: a weights file for the whole model (``graphprune.weights``), loaded before a part is
    selected. Raises ``UnknownModelError`` for a spec that does not resolve and ``UserCodeError`` when
    the model's own code fails.
    """
    _check_input_size(input_size)
    location, name = _split(spec)
    if submodule is None:
        error = _whole_model_error(location, name, spec)
        if error is not None:
            raise error
    model, inputs = _build(location, name, spec, input_size)
    if weights is not None:
        from graphprune.weights import load_weights

        load_weights(model, weights, spec)
    if submodule is not None:
        return select_submodule(model, tuple(inputs), submodule, spec)
    return model, inputs
