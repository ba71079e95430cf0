"""What a checkpoint must share with the run that resumes it, and the first way two runs differ.

Why: a resume that differs from the checkpoint's run silently trains on something else. Another input
size loads the same weights without complaint (the loss just jumps), another model fails deep inside
``load_state_dict``. Every checkpoint therefore records its run's identity as plain values (it loads
with ``weights_only=True``), in sections compared in a fixed order: the trajectory settings, the
model's tensors (names, shapes, dtypes), the constrained parameters, the example inputs and the
training data. ``first_difference`` names the first mismatch in one short sentence.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

SECTIONS = ("settings", "parameters", "constrained", "inputs", "data")
_DATA_LABELS = {"kind": "source", "size": "size", "batch_size": "batch size", "steps_per_epoch": "steps per epoch",
                "first_batch": "first batch"}
_MAX_VALUE = 60  # characters of a value quoted in a message


def run_identity(settings: dict[str, Any], module: nn.Module, constrained: list[str], example_inputs: Any,
                 data: dict[str, Any]) -> dict[str, Any]:
    """The identity recorded in a checkpoint. ``example_inputs`` None: not known (not compared)."""
    return {"settings": settings, "parameters": tensor_entries(module), "constrained": list(constrained),
            "inputs": None if example_inputs is None else leaf_descriptions(example_inputs), "data": data}


def tensor_entries(module: nn.Module) -> list[list[Any]]:
    """[name, "parameter" | "buffer", shape, dtype] for every entry of the state dict, in its order."""
    params = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    return [[name, "parameter" if name in params else "buffer", list(t.shape), str(t.dtype).removeprefix("torch.")]
            for name, t in module.state_dict(keep_vars=True).items() if isinstance(t, torch.Tensor)]


def leaf_descriptions(tree: Any) -> list[str]:
    """One short string per leaf of a pytree of inputs: ``float32[1, 3, 8, 8]`` or the leaf's type."""
    leaves, _ = pytree.tree_flatten(tree)
    return [describe(leaf) for leaf in leaves]


def describe(leaf: Any) -> str:
    if isinstance(leaf, torch.Tensor):
        return f"{str(leaf.dtype).removeprefix('torch.')}{list(leaf.shape)}"
    return _short(leaf) if isinstance(leaf, (int, float, str, bool, type(None))) else type(leaf).__name__


def first_difference(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first difference between two identities, as a sentence; None when they agree. A section either
    side did not record (None) is not compared."""
    checks = {"settings": _settings, "parameters": _parameters, "constrained": _constrained, "inputs": _inputs,
              "data": _data}
    for section in SECTIONS:
        a, b = saved.get(section), current.get(section)
        if a is not None and b is not None and a != b:
            found = checks[section](a, b)
            if found:
                return found
    return None


def _settings(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    for key in [*current, *(k for k in saved if k not in current)]:
        if saved.get(key) != current.get(key):
            return f"{key} is {_short(saved.get(key))} in the checkpoint but {_short(current.get(key))} in this run"
    return None


def _parameters(saved: list[list[Any]], current: list[list[Any]]) -> str | None:
    now = {entry[0]: entry for entry in current}
    before = {entry[0]: entry for entry in saved}
    for name, kind, shape, dtype in saved:
        if name not in now:
            return f"{kind} '{name}' is in the checkpoint but not in this model"
        if now[name][2] != shape:
            return f"{kind} '{name}' has shape {shape} in the checkpoint but {now[name][2]} in this model"
        if now[name][3] != dtype:
            return f"{kind} '{name}' is {dtype} in the checkpoint but {now[name][3]} in this model"
    extra = next((entry for entry in current if entry[0] not in before), None)
    return None if extra is None else f"this model's {extra[1]} '{extra[0]}' is not in the checkpoint"


def _constrained(saved: list[str], current: list[str]) -> str | None:
    gone = next((n for n in saved if n not in set(current)), None)
    if gone is not None:
        return f"parameter '{gone}' is pruned in the checkpoint's run but not in this one"
    new = next((n for n in current if n not in set(saved)), None)
    return None if new is None else f"parameter '{new}' is pruned in this run but not in the checkpoint's"


def _inputs(saved: list[str], current: list[str]) -> str | None:
    if len(saved) != len(current):
        return f"the example inputs have {len(saved)} leaves in the checkpoint but {len(current)} in this run"
    for i, (a, b) in enumerate(zip(saved, current)):
        if a != b:
            return f"example input {i} is {a} in the checkpoint but {b} in this run"
    return None


def _data(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    for key, label in _DATA_LABELS.items():
        if saved.get(key) != current.get(key):
            return (f"training data: {label} is {_short(saved.get(key))} in the checkpoint but "
                    f"{_short(current.get(key))} in this run")
    if saved.get("hash") != current.get("hash"):
        return "training data: the first batch's values differ from the checkpoint's (another dataset or preprocessing)"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."
