"""Emit a (pruned) module as files other toolchains load, each checked by loading it back.

Formats, chosen by suffix: ``.pt2`` (torch.export program; ``torch.export.load(f).module()``), ``.onnx``
(torch.onnx dynamo exporter; checked with ``onnx.checker`` and run in onnxruntime) and ``.py`` (plain
Python source plus ``<stem>_weights.pt``, loadable without graphprune: ``graphprune.export_py``).
Every file is written atomically. ``emit`` returns an EmitRecord: file, format, size, the max-abs
difference between the reloaded artifact's outputs and the PyTorch module's, the batch sizes that
check ran at, whether the batch dimension is dynamic, and seconds. The module is exported in its
current mode (``graphprune.compile`` returns it in eval mode) and never modified.

Batch: ``.pt2`` and ``.onnx`` get a dynamic dim 0 named ``batch`` (``graphprune.export_batch``) unless
``dynamic_batch=False``; a module whose batch cannot be dynamic (a reshape that bakes it) is exported
static, and a note says why. Token inputs (integer, two dims or more) get a dynamic length too (dim 1,
named ``sequence`` in ONNX), checked one token longer; where it cannot be, the file keeps the dynamic
batch at the example's length, with a note. ``.py`` is the module's own code: its check runs it at a
second batch too.
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

from graphprune.errors import ExportError, GraphpruneError
from graphprune.export_batch import (
    BatchPlan,
    axis_names,
    leading_size,
    plan_batch,
    quiet_failures,
    symbolic_batch,
    without_sequence,
)
from graphprune.export_py import python_source, weights_path
from graphprune.io import atomic_write, atomic_write_text, binary_file, torch_save

FORMATS = {".pt2": "pt2", ".onnx": "onnx", ".py": "py"}
_EXPORTER = {"pt2": "torch.export", "onnx": "torch.onnx export", "py": "Python export"}
DYNAMIC_TOLERANCE = 1e-3  # a dynamic file differing by more (relative to the outputs' scale) is not kept


@dataclass(frozen=True)
class EmitRecord:
    file: str
    format: str
    size_bytes: int
    parity_max_abs: float | None  # None when the check was skipped
    seconds: float
    extra_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dynamic_batch: bool | None = None  # dim 0 accepts any batch (checked at checked_batches); None: unchecked .py
    checked_batches: list[int | None] = field(default_factory=list)  # the batch sizes parity_max_abs covers
    dynamic_sequence: bool | None = None  # token inputs take any length; None: no token input (or not .pt2/.onnx)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


def save_pt2(module: nn.Module, inputs: tuple[Any, ...], path: Path, batch: BatchPlan | None = None) -> None:
    """Export ``module`` (with ``batch``: its dynamic batch, traced on ``batch.trace_inputs``) to ``path``."""
    program = torch.export.export(module, inputs) if batch is None else dynamic_program(module, batch)

    def write(tmp: Path) -> None:
        with binary_file(tmp) as fh:  # a buffer (never a path): see graphprune.io
            torch.export.save(program, fh)

    atomic_write(path, write)


def save_onnx(module: nn.Module, inputs: tuple[Any, ...], path: Path, opset: int | None = None,
              batch: BatchPlan | None = None) -> None:
    """Static: the dynamo exporter captures ``module`` itself. Dynamic: it converts our own torch.export
    program (which fails rather than specialise the batch) and names its dim 0 ``batch``."""
    source, names = (module, None) if batch is None else (dynamic_program(module, batch), axis_names(batch))
    program = torch.onnx.export(source, inputs if batch is None else batch.trace_inputs, dynamo=True,
                                opset_version=opset, verbose=False, dynamic_shapes=names)
    atomic_write(path, lambda tmp: program.save(str(tmp), external_data=False))


def dynamic_program(module: nn.Module, batch: BatchPlan) -> torch.export.ExportedProgram:
    """torch.export with the batch dimension symbolic; raises if it cannot be (never a specialised one)."""
    with quiet_failures():
        program = torch.export.export(module, batch.trace_inputs, dynamic_shapes=batch.shapes)
    if not symbolic_batch(program, batch):
        raise RuntimeError("torch.export specialised the batch dimension" + (" or the sequence length"
                                                                             if batch.sequence else ""))
    return program


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
    for i, (r, o) in enumerate(zip(ref, out)):
        if tuple(r.shape) != tuple(o.shape):
            raise ExportError(f"output {i} of the artifact has shape {tuple(o.shape)}, the module's {tuple(r.shape)}")
    return max((float((r.double() - torch.as_tensor(o).double()).abs().max()) for r, o in zip(ref, out)
                if r.numel()), default=0.0)


class _NotDynamic(Exception):
    """The dynamic-batch attempt failed (the message says why); a static export follows."""


def _guarded(fmt: str, path: Path, write: Callable[[], Any]) -> Any:
    """Run an export step, turning its failure into one ExportError naming the file and the exporter."""
    try:
        return write()
    except (GraphpruneError, _NotDynamic):
        raise
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except Exception as exc:
        raise ExportError(f"{path}: {_EXPORTER[fmt]} failed ({_first_line(exc)})") from exc


Checked = list[tuple[int | None, float]]  # (batch size, max-abs difference) per comparison


def _check(module: nn.Module, runner: Callable[..., Any], inputs: tuple[Any, ...]) -> tuple[int | None, float]:
    with torch.no_grad():
        return leading_size(inputs), parity(module(*inputs), runner(*inputs))


def _at_probe(module: nn.Module, batch: BatchPlan) -> Any:
    """The module's outputs at the probe batch; _NotDynamic when the module itself does not run there."""
    try:
        with torch.no_grad(), quiet_failures(stderr=True):
            return module(*batch.probe_inputs)
    except Exception as exc:
        raise _NotDynamic(f"the module does not run at batch {batch.probe_size} ({_first_line(exc)})") from exc


def _check_batch(expected: Any, runner: Callable[..., Any], inputs: tuple[Any, ...], what: str) -> tuple[int, float]:
    """(batch, parity) of a file claimed dynamic; _NotDynamic if it fails or computes something else there
    (torch.export assumes a dynamic size is not 1, so code that branches on batch == 1 is traced wrong)."""
    size = leading_size(inputs)
    try:
        with torch.no_grad(), quiet_failures(stderr=True):
            error = parity(expected, runner(*inputs))
    except Exception as exc:
        raise _NotDynamic(f"the {what} fails at batch {size} ({_first_line(exc)})") from exc
    scale = max((float(t.abs().max()) for t in tree_leaves(expected) if isinstance(t, torch.Tensor) and t.numel()),
                default=0.0)
    if not error <= DYNAMIC_TOLERANCE * max(1.0, scale):
        raise _NotDynamic(f"the {what} differs from the module at batch {size} (max-abs {error:.3g})")
    return size, error


def _write_dynamic(module: nn.Module, inputs: tuple[Any, ...], path: Path, fmt: str, opset: int | None,
                   batch: BatchPlan, check: bool) -> Checked:
    """Write with a dynamic batch; ``check``: reload and compare at the example's and the probe batch."""
    expected = _at_probe(module, batch)
    try:
        _save(module, batch.trace_inputs, path, fmt, opset, batch)
    except (GraphpruneError, OSError):
        raise
    except Exception as exc:
        raise _NotDynamic(f"the batch dimension cannot be dynamic ({_first_line(exc)})") from exc
    if not check:
        return []
    runner = load_back(path, fmt)
    with torch.no_grad():
        at_example = module(*inputs)
    return [_check_batch(at_example, runner, inputs, "dynamic file"),
            _check_batch(expected, runner, batch.probe_inputs, "dynamic file")]


def _save(module: nn.Module, inputs: tuple[Any, ...], path: Path, fmt: str, opset: int | None,
          batch: BatchPlan | None) -> None:
    if fmt == "pt2":
        save_pt2(module, inputs, path, batch)
    else:
        save_onnx(module, inputs, path, opset, batch)


def _export(module: nn.Module, inputs: tuple[Any, ...], path: Path, fmt: str, opset: int | None,
            batch: BatchPlan, check: bool) -> tuple[bool, Checked, list[str], bool | None]:
    """(dynamic batch?, parities, notes, dynamic sequence?) of writing .pt2/.onnx: a dynamic batch and
    sequence first, then a dynamic batch alone, else static, each fallback with a note."""
    notes: list[str] = []
    if batch.dynamic and batch.sequence:
        try:
            checked = _guarded(fmt, path, lambda: _write_dynamic(module, inputs, path, fmt, opset, batch, check))
            return True, checked, [], True
        except _NotDynamic as exc:
            notes.append(f"static sequence length: {exc}")
            batch = without_sequence(batch, inputs)
    sequence = False if notes else None
    if batch.dynamic:
        try:
            checked = _guarded(fmt, path, lambda: _write_dynamic(module, inputs, path, fmt, opset, batch, check))
            return True, checked, notes, sequence
        except _NotDynamic as exc:
            reason = str(exc)
    else:
        reason = batch.static_reason
    _guarded(fmt, path, lambda: _save(module, inputs, path, fmt, opset, None))
    checked = [_check(module, load_back(path, fmt), inputs)] if check else []
    return False, checked, [*notes, _static_note(batch, reason)], sequence


def _static_note(batch: BatchPlan, reason: str) -> str:
    return f"static batch {batch.size}: {reason}" if batch.size is not None else f"static: {reason}"


def _python(module: nn.Module, inputs: tuple[Any, ...], path: Path, check: bool
            ) -> tuple[bool | None, Checked, list[str]]:
    """(runs at another batch? None if unchecked, parities, notes) of writing .py, whose batch is the
    module's code's: ``[emit] dynamic_batch`` does not apply."""
    notes = _guarded("py", path, lambda: save_python(module, path))
    if not check:
        return None, [], notes
    runner = load_python(path)
    checked = [_check(module, runner, inputs)]
    batch = plan_batch(inputs, True, sequence=False)
    try:
        if not batch.dynamic:
            raise _NotDynamic(batch.static_reason)
        checked.append(_check_batch(_at_probe(module, batch), runner, batch.probe_inputs, ".py module"))
    except _NotDynamic as exc:
        return False, checked, [*notes, _static_note(batch, str(exc))]
    return True, checked, notes


def emit(module: nn.Module, example_inputs: tuple[Any, ...], path: str | Path, *, check: bool = True,
         opset: int | None = None, dynamic_batch: bool = True) -> EmitRecord:
    """Write ``module`` to ``path`` in the format its suffix names, then (``check``) reload and compare.

    ``dynamic_batch``: .pt2/.onnx get a dynamic dim 0 where the module allows it (else static, and the
    record's notes say why); False exports them at the example's batch. .py is checked at two batches."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix)
    if fmt is None:
        raise ExportError(f"{path}: unsupported suffix '{path.suffix}' (expected one of {sorted(FORMATS)})")
    inputs = tuple(example_inputs)
    start = time.perf_counter()
    sequence = None
    if fmt == "py":
        dynamic, checked, notes = _python(module, inputs, path, check)
    else:
        dynamic, checked, notes, sequence = _export(module, inputs, path, fmt, opset, plan_batch(inputs, dynamic_batch),
                                                    check)
    extra = [str(weights_path(path))] if fmt == "py" else []
    size = path.stat().st_size + sum(Path(f).stat().st_size for f in extra)
    error = max((e for _, e in checked), default=None)
    return EmitRecord(str(path), fmt, size, error, round(time.perf_counter() - start, 3), extra, notes, dynamic,
                      [b for b, _ in checked], sequence)
