"""The user's trained weights for a model built from a spec: ``--weights FILE``.

Why: a model spec builds the architecture with random weights; a user prunes *their* model. The
file may be any of the forms the ecosystem writes:

- a plain ``state_dict`` (``torch.save(model.state_dict(), path)``; torchvision and timm hub files);
- a full checkpoint holding one under ``state_dict``, ``model``, ``state_dict_ema`` or ``model_ema``
  (the first present wins; timm's ``train.py`` writes ``state_dict`` plus an ``argparse.Namespace``,
  which is allowed through; Lightning writes ``state_dict``);
- a ``.safetensors`` file (needs the ``safetensors`` package: ``pip install 'graphprune[safetensors]'``).

A prefix every key shares (``module.`` from DataParallel/DDP, ``_orig_mod.`` from ``torch.compile``)
is stripped. Files are read with ``weights_only=True``: no code in the file runs. Keys and shapes are
compared with the model before anything is loaded; every mismatch (missing, unexpected, shape) is
counted and the first few named in one ``InputError`` line.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError

CHECKPOINT_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SHOWN = 3  # names quoted per kind of mismatch


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, as a flat name -> tensor dict (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--weights {path}: no such file")
    raw = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    return _strip_wrappers(_unwrap(raw, path), path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise InputError(f"--weights {path}: reading .safetensors needs the safetensors package "
                         "(pip install 'graphprune[safetensors]')") from None
    try:
        return load_file(str(path))
    except Exception as exc:
        raise InputError(f"--weights {path}: not a readable safetensors file ({_first_line(exc)})") from exc


def _read_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # timm's train.py saves its args
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = _first_line(exc)
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise InputError(f"--weights {path}: the file holds pickled Python objects, not only tensors "
                             "(a whole pickled model?); graphprune does not run code from weights files: "
                             "save its state_dict instead (torch.save(model.state_dict(), path))") from exc
        raise InputError(f"--weights {path}: not a readable PyTorch file ({text})") from exc


def _unwrap(raw: Any, path: Path) -> Mapping[str, Any]:
    """The state dict inside a checkpoint (or the file itself when it is one)."""
    if not isinstance(raw, Mapping):
        raise InputError(f"--weights {path}: expected a state_dict or a checkpoint dict, found a "
                         f"{type(raw).__name__}")
    if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return raw
    for key in CHECKPOINT_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    keys = ", ".join(map(str, list(raw)[:6]))
    raise InputError(f"--weights {path}: a dict without a state_dict (its keys: {keys}); expected tensors, "
                     f"or a checkpoint holding them under one of {', '.join(CHECKPOINT_KEYS)}")


def _strip_wrappers(state: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    out = {str(k): v for k, v in state.items()}
    for prefix in WRAPPER_PREFIXES:
        if out and all(k.startswith(prefix) for k in out):
            out = {k.removeprefix(prefix): v for k, v in out.items()}
    return out


def mismatches(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """One sentence naming every kind of mismatch between the model's state dict and ``state``
    (missing, unexpected, shape), each with a count and its first names; None when they match.
    A BatchNorm's ``num_batches_tracked`` may be missing (older files lack it; torch fills it in)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} in the file, {list(own[k].shape)} in the model"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [_named(len(names), what, names) for what, names in
             (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if names]
    return "; ".join(parts) or None


def _named(count: int, what: str, names: list[str]) -> str:
    more = f", +{count - SHOWN} more" if count > SHOWN else ""
    return f"{count} {what} ({', '.join(names[:SHOWN])}{more})"


def load_weights(model: nn.Module, path: str | Path, spec: str | None = None) -> nn.Module:
    """Load the weights file at ``path`` into ``model`` (in place) and return it; an ``InputError``
    naming the mismatches when the file does not fit the model."""
    state = read_state_dict(path)
    problem = mismatches(model, state)
    if problem:
        hint = " (another architecture or number of classes? a file.py:factory can build the model to match)"
        raise InputError(f"--weights {path} does not fit {spec or type(model).__name__}: {problem}{hint}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"--weights {path}: load_state_dict failed ({_first_line(exc)})") from exc
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
