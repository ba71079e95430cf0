"""User models: ``package.module:factory`` and ``path/to/file.py:factory``.

Why here: this is where the user's code runs (importing their file, calling their factory), so this is
where its failures are told apart from ours. A spec that does not resolve (no such file, module or
attribute) is an UnknownModelError; the user's code raising (a syntax error, a failing import, a
factory that needs an argument or raises) is a UserCodeError naming the user's file:line and the
exception in one line (``models_zoo._loader`` wraps the call).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError, UnknownModelError, UserCodeError
from models_zoo._common import random_inputs, seeded
from models_zoo._suggest import unknown
from models_zoo._torchvision import DEFAULT_IMAGE_SHAPE

Inputs = tuple[torch.Tensor, ...]
_MODULE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


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
            raise unknown(spec, f"factory in '{owner}'", part, public, resolved)
        target = getattr(target, part)
        resolved += f"{part}."
    if not callable(target):
        raise UnknownModelError(
            f"malformed model spec '{spec}': '{attribute}' is a {type(target).__name__}, not a callable factory"
        )
    return target


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return None


def _accepts_input_size(factory: Callable[..., Any]) -> bool:
    parameters = _parameters(factory)
    if parameters is None:
        return False
    return "input_size" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _check_callable(factory: Callable[..., Any], spec: str, passes_size: bool) -> None:
    """A factory is called with no argument (or ``input_size=N``): one that needs more is refused up
    front, naming its definition, instead of failing inside the loader."""
    parameters = _parameters(factory)
    if parameters is None:
        return
    required = [n for n, p in parameters.items() if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and not (passes_size and n == "input_size")]
    if required:
        try:
            code = inspect.unwrap(factory).__code__
            where = f" (defined at {code.co_filename}:{code.co_firstlineno})"
        except AttributeError:
            where = ""
        raise UserCodeError(f"cannot load '{spec}': factory '{spec.rpartition(':')[2]}'{where} needs argument(s) "
                            f"{', '.join(required)}; a factory is called with no argument (or input_size=N): "
                            "give the others defaults or wrap it in a function that takes none")


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


def _call_factory(factory: Callable[..., Any], spec: str, input_size: int | None) -> tuple[nn.Module, Inputs]:
    passes_size = input_size is not None and _accepts_input_size(factory)
    _check_callable(factory, spec, passes_size)
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


def load_user_factory(location: str, attribute: str, spec: str, input_size: int | None) -> tuple[nn.Module, Inputs]:
    is_file = location.endswith(".py") or "/" in location or "\\" in location
    module = _import_file(location, spec) if is_file else _import_module(location, spec)
    return _call_factory(_get_factory(module, attribute, spec), spec, input_size)
