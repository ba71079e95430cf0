"""Select a part of a model to prune (``--submodule backbone``) with its own example inputs.

Why: some models cannot be pruned whole (a detection model takes a list of images and returns
per-image detections), and a user may want to prune one block. The part's example inputs are not
guessed: the whole model is run once on its own example inputs and the arguments of the part's
first call are captured (a forward pre-hook), then the run is stopped, so only the work up to that
call is done. For a torchvision detection backbone that is the normalised, batched image
``1x3xSxS`` its transform produces.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError, UnknownModelError, UserCodeError


class _Captured(Exception):
    """Raised by the pre-hook to stop the model once the part's inputs are in hand."""


def _find(model: nn.Module, path: str, spec: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        pass
    names = [n for n, _ in model.named_modules() if n]
    matches = difflib.get_close_matches(path, names, n=3, cutoff=0.6)
    children = [n for n, _ in model.named_children()]
    hint = f"did you mean {', '.join(matches)}?" if matches else f"its children are {', '.join(children[:12])}"
    raise UnknownModelError(f"'{spec}' has no submodule '{path}'; {hint}")


def _capture(model: nn.Module, part: nn.Module, inputs: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    captured: dict[str, Any] = {}

    def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured.setdefault("call", (args, kwargs))
        raise _Captured

    handle = part.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(*inputs)
    except _Captured:
        pass
    finally:
        handle.remove()
    if "call" not in captured:
        raise InputError("is never called when the model runs on its example inputs")
    return captured["call"]


def select_submodule(model: nn.Module, inputs: tuple[Any, ...], path: str,
                     spec: str) -> tuple[nn.Module, tuple[Any, ...]]:
    """(the submodule at ``path`` in eval mode, the tensors of its first call when ``model`` runs on
    ``inputs``). Refuses keyword or non-tensor arguments: compile takes tensors."""
    part = _find(model, path, spec)
    where = f"submodule '{path}' of '{spec}'"
    try:
        args, kwargs = _capture(model, part, inputs)
    except InputError as exc:
        raise InputError(f"{where} {exc}") from exc
    except Exception as exc:
        raise UserCodeError.wrap(f"cannot run '{spec}' to find the inputs of submodule '{path}'", exc) from exc
    if kwargs or not args or not all(isinstance(a, torch.Tensor) for a in args):
        kinds = [type(a).__name__ for a in args] + [f"{k}=" for k in kwargs]
        raise InputError(f"{where} is called with ({', '.join(kinds)}), not with tensors only: it cannot be "
                         "pruned on its own; choose a submodule that takes tensors (e.g. backbone)")
    return part.eval(), tuple(a.detach().clone() for a in args)
