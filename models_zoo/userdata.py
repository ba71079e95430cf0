"""A plan's ``[data]`` (``--data SPEC``) resolved to training and validation batches.

Forms of ``name``:

- a built-in task of ``models_zoo.data`` (``digits``, ``shapes``, ...): its train and test splits,
  unchanged (``image_size`` defaults to the example input's size);
- ``imagefolder:DIR``: torchvision's ``ImageFolder`` (one folder per class). ``DIR/train`` and
  ``DIR/val`` (or ``validation``/``test``) are used when present; otherwise ``val_split`` of ``DIR`` is
  held out. Images get the model's preprocessing (``models_zoo.preprocess``);
- ``package.module:factory`` or ``path/to/file.py:factory``: called with no argument, it returns a
  Dataset or DataLoader (training), a pair ``(train, val)`` or a dict with ``train`` and ``val``.

``batch_size`` (default 64), ``workers`` (default 0) and ``val_split`` (default 0.1 when a source has no
validation set; 0 keeps all for training) come from ``[data]``; a DataLoader keeps its own batch size.
The user's code failing (the factory, its imports, its dataset's ``__getitem__`` on the first batch) is
one ``UserCodeError`` naming the file:line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from graphprune.errors import GraphpruneError, InputError, UserCodeError
from graphprune.training.datasets import Data, with_validation

DEFAULT_BATCH, DEFAULT_VAL_SPLIT = 64, 0.1
IMAGEFOLDER = "imagefolder"
VAL_DIRS = ("val", "validation", "test")


def load_data(options: Mapping[str, Any], model: nn.Module, example_inputs: tuple[Any, ...]) -> Data:
    """The ``[data]`` table ``options`` resolved for ``model`` (see the module docstring)."""
    from models_zoo.data import TASKS

    name = str(options["name"])
    problem = name_problem(name)
    if problem:
        raise InputError(f"data.name: {problem}")
    if name in TASKS:
        return _builtin(name, options, example_inputs)
    location, _, rest = name.partition(":")
    if location == IMAGEFOLDER:
        return _imagefolder(name, rest, options, model, example_inputs)
    location, _, attribute = name.rpartition(":")
    return _checked(name, _factory(name, location, attribute), options)


def load_plan_data(options: Mapping[str, Any], model: nn.Module, example_inputs: tuple[Any, ...],
                   error: Callable[[str, str], Exception]) -> Data:
    """A plan's ``[data]`` table (``name`` defaults to ``digits``) for ``graphprune.plan.data``; a name
    that is no data spec at all is ``error("data.name", why)``, located in the plan."""
    options = {"name": "digits", **options}
    problem = name_problem(str(options["name"]))
    if problem:
        raise error("data.name", problem)
    return load_data(options, model, example_inputs)


def name_problem(name: str) -> str | None:
    """Why ``name`` is no data spec at all (checked before any work), or None."""
    from models_zoo.data import TASKS

    if name in TASKS or (":" in name and name.partition(":")[2]):
        return None
    return (f"unknown dataset '{name}' (built in: {', '.join(sorted(TASKS))}; or {IMAGEFOLDER}:DIR, "
            "package.module:factory, path/to/file.py:factory)")


def _builtin(name: str, options: Mapping[str, Any], inputs: tuple[Any, ...]) -> Data:
    from models_zoo.data import load_dataset

    if options.get("val_split") is not None:
        raise InputError(f"data '{name}': val_split does not apply to a built-in dataset (it has its own test "
                         "split, used for validation)")
    x = inputs[0] if inputs else None
    size = int(x.shape[-1]) if getattr(x, "ndim", 0) == 4 else 16
    kwargs = {"name": name, "batch_size": int(options.get("batch_size", DEFAULT_BATCH)),
              "image_size": int(options.get("image_size", size))}
    train, val = (load_dataset(**kwargs, split=split) for split in ("train", "test"))
    return Data(train, val, {"source": name, "train_examples": len(train.y), "val_examples": len(val.y),
                             "image_size": kwargs["image_size"]})


def _imagefolder(name: str, directory: str, options: Mapping[str, Any], model: nn.Module,
                 inputs: tuple[Any, ...]) -> Data:
    from models_zoo.preprocess import image_transform

    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InputError(f"data '{name}': no such directory")
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        raise InputError(f"data '{name}': needs torchvision (pip install 'graphprune[zoo]')") from None
    transform, preprocessing = image_transform(model, inputs, name)
    val_dir = next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)
    train_dir = root / "train" if val_dir is not None and (root / "train").is_dir() else root
    try:
        train = ImageFolder(str(train_dir), transform=transform)
        val = ImageFolder(str(val_dir), transform=transform) if train_dir != root else None
    except (FileNotFoundError, RuntimeError) as exc:
        raise InputError(f"data '{name}': {str(exc).splitlines()[0]}") from None
    if val is not None and val.classes != train.classes:
        raise InputError(f"data '{name}': {val_dir.name}/ has classes {val.classes[:4]}..., train/ has "
                         f"{train.classes[:4]}...: both need the same class folders")
    data = _checked(name, (train, val), options)
    record = {"source": name, "classes": len(train.classes), "layout": "train/ + " + val_dir.name + "/"
              if val is not None else "one folder, split", "preprocessing": preprocessing, **data.record}
    return Data(data.train, data.val, record)


def _factory(name: str, location: str, attribute: str) -> Any:
    """Import the user's module and call its factory; what their code raises is a UserCodeError."""
    from models_zoo._user import _get_factory, _import_file

    is_file = location.endswith(".py") or "/" in location or "\\" in location
    try:
        if is_file:
            if not Path(location).expanduser().is_file():
                raise InputError(f"data '{name}': file '{location}' does not exist")
            module = _import_file(location, name)
        else:
            module = _import_module(location, name)
        factory = _get_factory(module, attribute, name)
        return factory()
    except GraphpruneError as exc:
        if isinstance(exc, (InputError, UserCodeError)):
            raise
        raise InputError(str(exc).replace("unknown model", "unknown data").replace("model spec", "data spec")) \
            from None
    except Exception as exc:
        raise UserCodeError.wrap(f"data '{name}'", exc) from exc


def _import_module(location: str, name: str) -> Any:
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if location == missing or location.startswith(missing + "."):
            raise InputError(f"data '{name}': no module named '{missing}'") from exc
        raise


def _checked(name: str, value: Any, options: Mapping[str, Any]) -> Data:
    """The factory's (or ImageFolder's) result as training and validation batch sources, its first
    training example read once so a dataset that fails does so here, named as the user's code."""
    if isinstance(value, Mapping):
        train = value.get("train")
        val = next((value[k] for k in ("val", "validation") if value.get(k) is not None), None)
        if train is None:
            raise InputError(f"data '{name}': the factory returned a dict without 'train' (keys: {', '.join(value)})")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        train, val = value
    else:
        train, val = value, None
    fraction = options.get("val_split", DEFAULT_VAL_SPLIT if val is None else None)
    data = with_validation(train, val, fraction, f"data '{name}'", batch_size=int(options.get("batch_size",
                           DEFAULT_BATCH)), workers=int(options.get("workers", 0)), seed=int(options.get("seed", 0)))
    try:
        next(iter(data.train))
    except GraphpruneError:
        raise
    except StopIteration:
        raise InputError(f"data '{name}': the training data yields no batch") from None
    except Exception as exc:
        raise UserCodeError.wrap(f"data '{name}': reading the first training batch", exc) from exc
    return Data(data.train, data.val, {"source": name, **data.record})
