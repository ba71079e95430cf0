"""Emit a (pruned) module as files other toolchains load, each checked by loading it back.

Formats, chosen by suffix: ``.pt2`` (torch.export program; ``torch.export.load(f).module()``), ``.onnx``
(torch.onnx dynamo exporter; checked with ``onnx.checker`` and run in onnxruntime) and ``.py`` (plain
Python source plus ``<stem>_weights.pt``, loadable without graphprune: ``graphprune.export_py``).
Every file is written atomically. ``emit`` returns an EmitRecord: file, format, size, the max-abs
difference between the reloaded artifact's outputs and the PyTorch module's on the example inputs,
and seconds. Shapes are those of the example inputs (no dynamic batch); the module is exported in its
current mode (``graphprune.compile`` returns it in eval mode) and never modified.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from graphprune.errors import GraphpruneError
from graphprune.export_py import python_source, weights_path
from graphprune.io import atomic_write, atomic_write_text, binary_file, torch_save

FORMATS = {".pt2": "pt2", ".onnx": "onnx", ".py": "py"}
_EXPORTER = {"pt2": "torch.export", "onnx": "torch.onnx export", "py": "Python export"}


class ExportError(GraphpruneError):
    """The module could not be exported in the requested format."""


@dataclass(frozen=True)
class EmitRecord:
    file: str
    format: str
    size_bytes: int
    parity_max_abs: float | None  # None when the check was skipped
    seconds: float
    extra_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


def save_pt2(module: nn.Module, inputs: tuple[Any, ...], path: Path) -> None:
    program = torch.export.export(module, inputs)

    def write(tmp: Path) -> None:
        with binary_file(tmp) as fh:  # a buffer (never a path): see graphprune.io
            torch.export.save(program, fh)

    atomic_write(path, write)


def save_onnx(module: nn.Module, inputs: tuple[Any, ...], path: Path, opset: int | None = None) -> None:
    program = torch.onnx.export(module, inputs, dynamo=True, opset_version=opset, verbose=False)
    atomic_write(path, lambda tmp: program.save(str(tmp), external_data=False))


def save_python(module: nn.Module, path: Path) -> list[str]:
    """Write ``path`` (.py) and its weights file; return notes (e.g. layers pickled, not rebuilt)."""
    if not isinstance(module, torch.fx.GraphModule):
        raise ExportError(f"{path}: .py export needs an fx.GraphModule, got {type(module).__name__}")
    weights = weights_path(path)
    source, blob = python_source(module, weights.name)
    atomic_write(weights, lambda tmp: torch_save(blob, tmp))
    atomic_write_text(path, source)
    return [f"pickled (not rebuilt from a constructor): {sorted(blob['modules'])}"] if blob["modules"] else []


def load_python(path: Path) -> nn.Module:
    """Import a written .py under a fresh module name and call its ``load()``."""
    spec = importlib.util.spec_from_file_location(f"_graphprune_emitted_{uuid.uuid4().hex}", path)
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    return code.load()


def _onnx_runner(path: Path) -> Callable[..., Any]:
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> list[torch.Tensor]:
        feeds = {n: x.detach().numpy() for n, x in zip(names, tree_leaves(inputs))}
        return [torch.from_numpy(o) for o in session.run(None, feeds)]

    return run


def load_back(path: Path, fmt: str) -> Callable[..., Any]:
    if fmt == "pt2":
        return torch.export.load(path).module()
    if fmt == "onnx":
        return _onnx_runner(path)
    return load_python(path)


def parity(reference: Any, got: Any) -> float:
    """Max-abs difference over every tensor output (outputs compared in flattening order)."""
    ref, out = [t for t in tree_leaves(reference) if isinstance(t, torch.Tensor)], tree_leaves(got)
    if len(ref) != len(out):
        raise ExportError(f"the artifact returns {len(out)} tensors, the module {len(ref)}")
    return max((float((r.double() - torch.as_tensor(o).double()).abs().max()) for r, o in zip(ref, out)
                if r.numel()), default=0.0)


def emit(module: nn.Module, example_inputs: tuple[Any, ...], path: str | Path, *, check: bool = True,
         opset: int | None = None) -> EmitRecord:
    """Write ``module`` to ``path`` in the format its suffix names, then (``check``) reload and compare."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix)
    if fmt is None:
        raise ExportError(f"{path}: unsupported suffix '{path.suffix}' (expected one of {sorted(FORMATS)})")
    inputs = tuple(example_inputs)
    start, notes = time.perf_counter(), []
    try:
        if fmt == "pt2":
            save_pt2(module, inputs, path)
        elif fmt == "onnx":
            save_onnx(module, inputs, path, opset)
        else:
            notes = save_python(module, path)
    except GraphpruneError:
        raise
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except Exception as exc:
        raise ExportError(f"{path}: {_EXPORTER[fmt]} failed ({_first_line(exc)})") from exc
    error = None
    if check:
        with torch.no_grad():
            error = parity(module(*inputs), load_back(path, fmt)(*inputs))
    extra = [str(weights_path(path))] if fmt == "py" else []
    size = path.stat().st_size + sum(Path(f).stat().st_size for f in extra)
    return EmitRecord(str(path), fmt, size, error, round(time.perf_counter() - start, 3), extra, notes)
