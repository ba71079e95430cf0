"""``graphprune compile``: load a model, prune it, write what was asked, print a summary.

Order, so that a mistake costs nothing and a failure loses nothing: everything cheap is checked
first (the plan, its pipeline, every output path: suffixes, directories, two options naming one file,
a directory that cannot be written), then the model is built and compiled, then every file is written
into staging (``graphprune.outputs``) and only at the end committed together. An error or a Ctrl-C
anywhere leaves the user's files as they were. The plan's own ``[emit]`` files are staged too (the
emit pass is given the staged path; the report names the real one).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from graphprune import cli_render as render
from graphprune import progress
from graphprune.errors import GraphpruneError, InputError, OutputError
from graphprune.outputs import OutputSet

OUT_SUFFIXES = (".pt2", ".pt", ".onnx", ".py")
LABELS = {"--out": "model", "--out weights": "weights", "--report": "report", "--plot": "plot"}


def check_spec(spec: str) -> None:
    """Refuse a spec that is wrong on its face (``zoo:`` typo, empty part) before torch is imported."""
    import models_zoo

    models_zoo.check_spec(spec)


def load_model(spec: str, input_size: int | None, submodule: str | None = None,
               weights: str | None = None) -> tuple[Any, tuple[Any, ...]]:
    import models_zoo

    return models_zoo.load(spec, input_size=input_size, submodule=submodule, weights=weights)


def input_size_of(flag: int | None, plan: Any) -> int | None:
    if flag is not None or plan.input_shape is None:
        return flag
    return plan.input_shape[-1]


# ---------------------------------------------------------------------------------------- plan


def _prepared_plan(args: argparse.Namespace) -> Any:
    """The plan with the command line's flags applied (``--out`` replaces the plan's ``emit.path``)."""
    from graphprune.plan import load_plan, with_overrides
    from graphprune.plan.schema import EMIT_FORMATS

    overrides = {"sparsity": args.sparsity, "score": args.score, "round_to": args.round_to, "exact": args.exact,
                 "statistics": args.statistics, "outputs": args.outputs}
    plan = with_overrides(load_plan(args.plan), overrides)
    if args.out is not None:
        _check_out(args.out)
        expected = EMIT_FORMATS.get(plan.emit.format or "")
        if expected and Path(args.out).suffix != expected:
            raise InputError(f"--out {args.out}: suffix does not match the plan's emit.format = "
                             f"'{plan.emit.format}' (expected {expected})")
        plan = dataclasses.replace(plan, emit=dataclasses.replace(plan.emit, path=None))
    if args.weights is not None and not Path(args.weights).is_file():
        raise InputError(f"--weights {args.weights}: no such file")
    if args.data:
        plan = dataclasses.replace(plan, data={**(plan.data or {}), "name": args.data})
    for flag, key, value in (("--resume", "resume", args.resume), ("--overwrite", "overwrite", args.overwrite),
                             ("--epochs", "epochs", args.epochs)):
        if value is not None and value is not False:
            plan = _set_training_option(plan, flag, key, value)
    if args.latency:
        plan = dataclasses.replace(plan, pass_options={**plan.pass_options, "measure-latency": {}})
    if args.input_size is not None:  # the flag wins over the plan's [model] input_shape
        plan = dataclasses.replace(plan, input_shape=None)
    return plan


TRAINING_PASSES = {"--resume": ("admm", "finetune"), "--overwrite": ("admm", "finetune"), "--epochs": ("finetune",)}
TRAINING_VERBS = {"--resume": "continues training", "--overwrite": "restarts training",
                  "--epochs": "sets the recovery epochs"}


def _set_training_option(plan: Any, flag: str, key: str, value: Any) -> Any:
    """``key = value`` in every training section of the plan the flag applies to ([admm], [finetune])."""
    sections = [name for name in TRAINING_PASSES[flag] if name in plan.pass_options]
    if not sections:
        wanted = " or ".join(f"[{name}]" for name in TRAINING_PASSES[flag])
        raise InputError(f"{flag} {TRAINING_VERBS[flag]}: the plan has no {wanted} section")
    options = {**plan.pass_options, **{name: {**plan.pass_options[name], key: value} for name in sections}}
    return dataclasses.replace(plan, pass_options=options)


def _check_out(path: str) -> None:
    suffix = Path(path).suffix
    if suffix not in OUT_SUFFIXES:
        raise InputError(f"--out {path}: unsupported suffix '{suffix}' (use .pt2 for a torch.export "
                         "program, .onnx for ONNX, .py for standalone Python + weights, or .pt for a pickled "
                         "fx.GraphModule)")


def _emit_paths(plan: Any) -> list[str]:
    """The files the plan's emit passes will write, as the scheduler hands them over."""
    from graphprune.scheduler import Step, schedule

    return [p for step in schedule(plan).steps if isinstance(step, Step) and step.pass_.name == "emit"
            for p in getattr(step.pass_, "paths", ())]


def _staged_plan(plan: Any, outputs: OutputSet, emits: dict[str, str]) -> Any:
    """``plan`` with each emit path (``emits``: path -> flag) replaced by its staged path."""
    if not emits:
        return plan
    staged = {path: str(outputs.staged(flag)) for path, flag in emits.items()}
    emit = plan.emit
    if emit.resolved() and emit.resolved()[0] in staged:
        emit = dataclasses.replace(emit, path=staged[emit.resolved()[0]])
    options = dict(plan.pass_options)
    if "emit" in options and "paths" in options["emit"]:
        options["emit"] = {**options["emit"], "paths": [staged.get(p, p) for p in options["emit"]["paths"]]}
    return dataclasses.replace(plan, emit=emit, pass_options=options)


# ------------------------------------------------------------------------------------- outputs


def _add_python(outputs: OutputSet, flag: str, path: str) -> None:
    """A .py export: the source and, beside it, its weights file (which the source names)."""
    from graphprune.export_py import weights_path

    target = outputs.add(flag, path)
    weights = outputs.add(f"{flag} weights", weights_path(target.final))
    if target.through or weights.through or weights.final != weights_path(target.final):
        raise InputError(f"{flag} {path}: a .py export writes a regular file and its weights {weights.path} "
                         "beside it; give paths that are regular files, not links or devices")


def _fill(pairs: list[tuple[str, str]]) -> OutputSet:
    outputs = OutputSet()
    for flag, path in pairs:
        if flag not in ("--plot", "--report") and path.endswith(".py"):
            _add_python(outputs, flag, path)
        else:
            outputs.add(flag, path)
    return outputs


def _outputs(args: argparse.Namespace, plan: Any) -> tuple[OutputSet, dict[str, str]]:
    """Every file this run writes, checked before any work; and the plan's emit paths -> their flag. The
    options' own files are checked first, before scheduling the pipeline imports torch."""
    named = [("--out", args.out)] if args.out is not None else []
    files = [(flag, path) for flag, path in (("--plot", args.plot), ("--report", args.report)) if path]
    _fill([*named, *files])
    emits = {path: f"emit[{i}]" for i, path in enumerate(_emit_paths(plan))}
    return _fill([*named, *((flag, path) for path, flag in emits.items()), *files]), emits


def _save_module(module: Any, inputs: tuple[Any, ...], outputs: OutputSet, dynamic_batch: bool = True) -> None:
    """Write ``--out``: .pt2/.onnx/.py through graphprune.export (reloaded and compared; a batch that could
    not be made dynamic is a warning on stderr), .pt pickled."""
    out = outputs.targets["--out"].path
    staged = outputs.staged("--out")
    if out.suffix == ".pt":
        from graphprune.loading import save_pt

        try:
            reasons = outputs.write("--out", lambda path: save_pt(module, path))
        except OutputError:
            raise
        except Exception as exc:  # an unpicklable attribute of a layer, say
            raise OutputError(f"--out {out}: torch.save failed ({type(exc).__name__}: {exc})") from exc
        if reasons:
            print(f"graphprune: warning: --out {out}: loading this .pt needs graphprune installed "
                  f"({'; '.join(reasons)}); .pt2 and .onnx load without it", file=sys.stderr)
        return
    from graphprune.export import ExportError as EmitError
    from graphprune.export import emit

    try:
        record = emit(module, tuple(inputs), staged, dynamic_batch=dynamic_batch)
        warn_static_batch([outputs.unstage(record.to_dict())], dynamic_batch, "--out ")
    except EmitError as exc:
        detail = str(exc).removeprefix(f"{staged}: ")
        hint = "" if detail.startswith("cannot write") else \
            f" on the pruned module; save the fx.GraphModule instead with --out {out.with_suffix('.pt')}"
        raise OutputError(f"--out {out}: {detail}{hint}") from exc


def warn_static_batch(records: list[dict[str, Any]], asked: bool, flag: str = "") -> None:
    """A dynamic batch was asked for and a file could not have one: say so on stderr, even with -q."""
    for record in records:
        if asked and record.get("dynamic_batch") is False:  # the batch note is the record's last
            print(f"graphprune: warning: {flag}{record['file']}: {record['notes'][-1]}", file=sys.stderr)


def _write_all(args: argparse.Namespace, result: Any, inputs: tuple[Any, ...], outputs: OutputSet,
               seconds: dict[str, float], dynamic_batch: bool = True) -> None:
    if "--out" in outputs.targets:
        start = time.perf_counter()
        with progress.stage(f"export {args.out}"):
            _save_module(result.module, inputs, outputs, dynamic_batch)
        seconds["export" if Path(args.out).suffix == ".pt2" else "save"] = time.perf_counter() - start
    if args.plot:
        from graphprune.plot import plot_widths

        outputs.write("--plot", lambda path: plot_widths(result.report.layers, path, title=args.spec))
    if args.report:
        text = result.report.to_json()
        outputs.write("--report", lambda path: path.write_text(text))


def _unstage_report(report: Any, plan: Any, outputs: OutputSet) -> None:
    """The report names the files where they will be, not where they were staged."""
    report.plan = plan.to_dict()  # the plan as given; compile saw it with staged emit paths
    report.schedule = outputs.unstage(report.schedule)
    report.artifacts = outputs.unstage(report.artifacts)


def _label(flag: str) -> str:
    """How a written file is introduced: ``wrote model: ...``; a plan's emit files as ``emitted file``."""
    return LABELS.get(flag) or ("emitted weights" if flag.endswith("weights") else "emitted file")


# ------------------------------------------------------------------------------------- command


def cmd_compile(args: argparse.Namespace) -> int:
    import graphprune

    plan = _prepared_plan(args)
    check_spec(args.spec)
    outputs, emits = _outputs(args, plan)  # also validates the pipeline (schedule)
    with outputs:
        try:
            rank0 = int(os.environ.get("RANK", "0")) == 0  # under torchrun one spinner, rank 0's
            with progress.spinner(f"compile {args.spec}", enabled=not args.quiet and rank0):
                start = time.perf_counter()
                with progress.stage("load"):
                    model, inputs = load_model(args.spec, input_size_of(args.input_size, plan), args.submodule,
                                               args.weights)
                seconds = {"load": time.perf_counter() - start}
                result = graphprune.compile(model, inputs, _staged_plan(plan, outputs, emits), name=args.spec,
                                            capture=getattr(args, "capture", None),
                                            dynamic=getattr(args, "dynamic", None))
                if not rank0:
                    return 0  # under torchrun every rank trains; only rank 0 writes and prints
                _unstage_report(result.report, plan, outputs)
                warn_static_batch(result.report.artifacts.get("emit", {}).get("files", []), plan.emit.dynamic_batch)
                _write_all(args, result, tuple(inputs), outputs, seconds, plan.emit.dynamic_batch)
            written = outputs.commit()
        except GraphpruneError as exc:
            exc.args = (outputs.unstage(str(exc)),)  # name the user's paths, not the staging ones
            raise
    if not args.quiet:
        labels = [(_label(w.flag), w.path, w.size) for w in written]
        render.print_compile(render.console(stderr=outputs.writes_to(1)), result.report, tuple(inputs), seconds,
                             labels)
    return 0
