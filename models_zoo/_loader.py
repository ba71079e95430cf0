"""Resolve a model spec string to ``(model in eval mode, example inputs)``.

Why: the CLI, benchmarks and tests all name models by one string, so resolution, default input
shapes and error messages live in one place. Every failure to resolve is an ``UnknownModelError``
whose single-line message names the spec and suggests close matches, so the CLI can print it as is.
Models are built under a fixed seed and example inputs come from a seeded ``torch.Generator``:
the same spec always yields the same weights and inputs, without touching the caller's RNG.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError, UnknownModelError
from models_zoo._catalog import ZOO_PREFIX, zoo_factory, zoo_names
from models_zoo._common import random_inputs, seeded

Inputs = tuple[torch.Tensor, ...]
Loaded = tuple[nn.Module, Inputs]

DEFAULT_IMAGE_SHAPE = (1, 3, 224, 224)
SPEC_FORMS = "zoo:NAME, torchvision:NAME, timm:NAME, package.module:factory or path/to/file.py:factory"
LIST_HINT = "run `graphprune zoo` to list models"
# torchvision classifiers whose architecture (with weights=None) needs another default input size.
TORCHVISION_INPUT_SIZE = {"inception_v3": 299}
# Constructor flags so forward returns a plain tensor and init is cheap and warning-free.
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}
# Architectures built for one image size: the constructor argument that sets it.
TORCHVISION_SIZE_KWARG = {"vit_": "image_size", "maxvit_": "input_size"}
_MODULE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# ----------------------------------------------------------------------------------------- helpers


def _suggest(name: str, candidates: Iterable[str], prefix: str = "") -> str:
    """'; did you mean a, b?' for the closest candidates, or '' when none is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(prefix + m for m in matches)}?" if matches else ""


def _unknown(spec: str, what: str, name: str, candidates: Iterable[str], prefix: str) -> UnknownModelError:
    hint = _suggest(name, candidates, prefix)
    return UnknownModelError(f"unknown model '{spec}': no {what} named '{name}'{hint} ({LIST_HINT})")


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
        raise _unknown(spec, "in-repo model", name, zoo_names(), f"{ZOO_PREFIX}:")
    return factory() if input_size is None else factory(input_size=input_size)


def _torchvision_kwargs(name: str, input_size: int | None) -> dict[str, Any]:
    kwargs = dict(TORCHVISION_KWARGS.get(name, {}))
    if input_size is not None:
        for prefix, argument in TORCHVISION_SIZE_KWARG.items():
            if name.startswith(prefix):
                kwargs[argument] = (input_size, input_size) if argument == "input_size" else input_size
    return kwargs


def _load_torchvision(name: str, spec: str, input_size: int | None) -> Loaded:
    models = _import_optional("torchvision", spec).models
    names = models.list_models(module=models)
    if name not in names:
        error = _unknown(spec, "torchvision classification model", name, names, "torchvision:")
        if name in models.list_models():
            error = UnknownModelError(
                f"unsupported model '{spec}': only torchvision classification models are supported "
                f"({LIST_HINT})"
            )
        raise error
    with seeded():
        model = models.get_model(name, weights=None, **_torchvision_kwargs(name, input_size))
    size = input_size or TORCHVISION_INPUT_SIZE.get(name, DEFAULT_IMAGE_SHAPE[-1])
    return model, random_inputs(_image_shape(3, size))


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


NAMESPACES: dict[str, Callable[[str, str, int | None], Loaded]] = {
    ZOO_PREFIX: _load_zoo,
    "torchvision": _load_torchvision,
    "timm": _load_timm,
}


# ------------------------------------------------------------------------------ user factories


def _import_file(path_text: str, spec: str) -> ModuleType:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UnknownModelError(f"unknown model '{spec}': model file '{path_text}' does not exist")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", resolved.stem)
    module_name = f"_graphprune_user_{stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise UnknownModelError(f"unknown model '{spec}': cannot import '{path}' as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses, pickling etc. look the module up by name
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _import_module(module_path: str, spec: str) -> ModuleType:
    if not _MODULE_PATH.match(module_path):
        raise UnknownModelError(
            f"malformed model spec '{spec}': '{module_path}' is neither a dotted module path nor a .py file"
        )
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_path == missing or module_path.startswith(missing + "."):
            raise UnknownModelError(f"unknown model '{spec}': no module named '{missing}'") from exc
        raise


def _get_factory(module: ModuleType, attribute: str, spec: str) -> Callable[..., Any]:
    """Look up ``attribute`` (dotted, e.g. ``Net.build``) in ``module``; it must be callable."""
    target: Any = module
    resolved = f"{spec.rpartition(':')[0]}:"  # the spec prefix that resolved so far, for suggestions
    for part in attribute.split("."):
        if not hasattr(target, part):
            public = [n for n in dir(target) if not n.startswith("_") and callable(getattr(target, n))]
            owner = getattr(target, "__name__", module.__name__)
            raise _unknown(spec, f"factory in '{owner}'", part, public, resolved)
        target = getattr(target, part)
        resolved += f"{part}."
    if not callable(target):
        raise UnknownModelError(
            f"malformed model spec '{spec}': '{attribute}' is a {type(target).__name__}, not a callable factory"
        )
    return target


def _accepts_input_size(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "input_size" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _as_inputs(value: Any, spec: str) -> Inputs:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(value)
    raise InputError(
        f"factory for '{spec}' returned example inputs of type {type(value).__name__}; "
        "expected a tensor or a tuple of tensors"
    )


def _default_inputs(model: nn.Module, input_size: int | None) -> Inputs:
    shape = tuple(getattr(model, "example_input_shape", DEFAULT_IMAGE_SHAPE))
    if len(shape) == 3:  # (C, H, W): add the batch dim
        shape = (1, *shape)
    if input_size is not None:
        shape = (*shape[:-2], input_size, input_size)
    return random_inputs(shape)


def _resize_inputs(inputs: Inputs, input_size: int, spec: str) -> Inputs:
    if len(inputs) != 1 or inputs[0].dim() != 4 or not inputs[0].is_floating_point():
        raise InputError(
            f"cannot apply input_size={input_size} to '{spec}': its factory takes no "
            "input_size argument and its example inputs are not a single NCHW image"
        )
    batch, channels = inputs[0].shape[:2]
    return random_inputs((batch, channels, input_size, input_size))


def _call_factory(factory: Callable[..., Any], spec: str, input_size: int | None) -> Loaded:
    passes_size = input_size is not None and _accepts_input_size(factory)
    with seeded():
        result = factory(input_size=input_size) if passes_size else factory()
    if isinstance(result, nn.Module):
        return result, _default_inputs(result, input_size)
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], nn.Module):
        inputs = _as_inputs(result[1], spec)
        if input_size is not None and not passes_size:
            inputs = _resize_inputs(inputs, input_size, spec)
        return result[0], inputs
    raise InputError(
        f"factory for '{spec}' returned {type(result).__name__}; "
        "expected an nn.Module or (nn.Module, example_inputs)"
    )


def _load_user_factory(location: str, attribute: str, spec: str, input_size: int | None) -> Loaded:
    is_file = location.endswith(".py") or "/" in location or "\\" in location
    module = _import_file(location, spec) if is_file else _import_module(location, spec)
    return _call_factory(_get_factory(module, attribute, spec), spec, input_size)


# --------------------------------------------------------------------------------------- public


def _bare_name_candidates() -> dict[str, list[str]]:
    """Bare model name -> the full specs it could mean, for a spec given without a namespace."""
    candidates: dict[str, list[str]] = {name: [f"{ZOO_PREFIX}:{name}"] for name in zoo_names()}
    try:
        import torchvision
    except ImportError:
        return candidates
    for name in torchvision.models.list_models(module=torchvision.models):
        candidates.setdefault(name, []).append(f"torchvision:{name}")
    return candidates


def _split(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str) or ":" not in spec:
        candidates = _bare_name_candidates()
        matches = difflib.get_close_matches(str(spec), list(candidates), n=3, cutoff=0.6)
        specs = [full for match in matches for full in candidates[match]][:3]
        hint = f"; did you mean {', '.join(specs)}?" if specs else ""
        raise UnknownModelError(f"malformed model spec '{spec}': expected {SPEC_FORMS}{hint}")
    location, _, name = spec.rpartition(":")
    if not location or not name:
        raise UnknownModelError(f"malformed model spec '{spec}': expected {SPEC_FORMS}")
    return location, name


def load(spec: str, input_size: int | None = None) -> Loaded:
    """Build the model a spec names, in eval mode, with deterministic batch-1 example inputs.

    ``input_size`` overrides the spatial size (height = width) of an image model's input; models
    built for a fixed size (ViTs, the zoo's VGG) are constructed for it. Raises
    ``UnknownModelError`` for a spec that does not resolve.
    """
    _check_input_size(input_size)
    location, name = _split(spec)
    loader = NAMESPACES.get(location)
    if loader is not None:
        model, inputs = loader(name, spec, input_size)
    else:
        model, inputs = _load_user_factory(location, name, spec, input_size)
    return model.eval(), inputs
