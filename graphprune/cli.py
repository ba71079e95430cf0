"""The ``graphprune`` command line: ``compile``, ``inspect`` and ``zoo``.

``main(argv)`` never raises for a problem the user can act on: every ``GraphpruneError`` (and every
argument error) is printed as one line ``graphprune: error: <message>`` on stderr and the exit code
is 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from graphprune.errors import GraphpruneError, InputError

PROG = "graphprune"
OUT_SUFFIXES = (".pt2", ".pt", ".onnx", ".py")
MAX_MEMBERS = 4  # member fqns shown per group by `inspect`
MAX_NODES = 3  # node names shown per reason


class ExportError(GraphpruneError):
    """The pruned module could not be exported or saved to the requested ``--out`` file."""


class _UsageError(Exception):
    """An argparse error, turned into the same one-line message as a GraphpruneError."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------------------------------ arguments


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Structured pruning of PyTorch models with torch.fx.")
    from graphprune import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    spec_help = ("model spec: zoo:NAME, torchvision:NAME, timm:NAME, package.module:factory or "
                 "path/to/file.py:factory (see `graphprune zoo`)")
    size_help = "spatial input size (height = width) of the example input"

    p = sub.add_parser("compile", help="prune a model and report the savings",
                       description="Prune a model: trace, analyse channel groups, score, remove channels.")
    p.add_argument("spec", metavar="SPEC", help=spec_help)
    # Option defaults are None so that a --plan file's values are not overridden by argparse defaults.
    p.add_argument("--sparsity", type=float, default=None,
                   help="fraction of every group's channels to remove, in [0, 1) (default 0.5)")
    p.add_argument("--score", default=None, metavar="CRITERION",
                   help="channel criterion for every rule: l1, l2 (default), bn-scale, taylor, fpgm, snip, grasp, "
                        "synflow, px, random")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted [admm] run from its checkpoint_dir (same plan and seed)")
    p.add_argument("--overwrite", action="store_true",
                   help="let a fresh [admm] run delete the checkpoint and metrics already in its checkpoint_dir")
    p.add_argument("--data", metavar="NAME", default=None,
                   help="dataset for data-driven passes (scoring, ADMM): digits or shapes (built in, no download)")
    p.add_argument("--round-to", type=_positive_int, default=None, dest="round_to",
                   help="keep a multiple of this many channels per group (default 1)")
    p.add_argument("--exact", action="store_const", const=True, default=None,
                   help="never remove a channel whose removal changes a statistic (LayerNorm)")
    p.add_argument("--plan", metavar="PLAN",
                   help="a plan: recipe name (see `graphprune plan --list`) or .toml/.yaml/.json file")
    p.add_argument("--input-size", type=_positive_int, metavar="N", dest="input_size", help=size_help)
    p.add_argument("--out", metavar="FILE",
                   help="save the pruned model: .pt2 = torch.export program, .onnx = ONNX, .py = standalone "
                        "Python + weights, .pt = pickled fx.GraphModule")
    p.add_argument("--report", metavar="FILE", help="save the JSON compile report")
    p.add_argument("--plot", metavar="PNG", help="save a per-layer width plot (before/after bars; needs matplotlib)")
    p.add_argument("--latency", action="store_true",
                   help="measure CPU latency of dense, pruned and pruned+fused at batch 1 and 32 (into the report)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("inspect", help="show a model's channel groups without pruning",
                       description="Trace a model and show its channel groups, unknown ops and inexact "
                                   "reasons, without pruning it.")
    p.add_argument("spec", metavar="SPEC", help=spec_help)
    p.add_argument("--input-size", type=_positive_int, metavar="N", dest="input_size", help=size_help)
    p.add_argument("--all", action="store_true", dest="show_all",
                   help="also list groups with no prunable channel")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("plan", help="validate a plan and show the pipeline it schedules",
                       description="Validate a plan and print the passes the scheduler chose, in order, and why; "
                                   "nothing is run. Without PLAN (or with --list), list the recipes.")
    p.add_argument("plan", metavar="PLAN", nargs="?", help="recipe name or plan file")
    p.add_argument("--model", metavar="SPEC", help="also check the plan's selectors against this model")
    p.add_argument("--explain", action="store_true", help="show the pipeline and why each pass runs (default)")
    p.add_argument("--list", action="store_true", help="list the built-in recipes")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("zoo", help="list the models a spec can name",
                       description="List the in-repo models and the external model namespaces.")
    p.set_defaults(func=cmd_zoo)
    return parser


# -------------------------------------------------------------------------------------- output


def _console(file: Any = None) -> Any:
    from rich.console import Console

    console = Console(file=file, markup=False, highlight=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # piped or captured: do not wrap fqns at 80 columns
    return console


def _table(title: str | None = None, *columns: str, **kwargs: Any) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", **kwargs)
    for column in columns:
        right = column in {"before", "after", "reduction", "seconds", "size", "prunable", "group",
                           "members", "models", "count"}
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    return table


def _text(value: Any) -> Any:
    from rich.text import Text

    return Text(str(value))


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _nodes(nodes: Sequence[str]) -> str:
    head = ", ".join(nodes[:MAX_NODES])
    return head + (f", +{len(nodes) - MAX_NODES}" if len(nodes) > MAX_NODES else "")


def _reasons(reasons: dict[str, list[str]]) -> str:
    return "\n".join(f"{reason} ({_nodes(nodes)})" for reason, nodes in sorted(reasons.items()))


# ------------------------------------------------------------------------------------- helpers


def _load(spec: str, input_size: int | None) -> tuple[Any, tuple[Any, ...]]:
    import models_zoo

    return models_zoo.load(spec, input_size=input_size)


def _check_out(path: str | None) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.suffix not in OUT_SUFFIXES:
        raise InputError(f"--out {path}: unsupported suffix '{out.suffix}' (use .pt2 for a torch.export "
                         "program, .onnx for ONNX, .py for standalone Python + weights, or .pt for a pickled "
                         "fx.GraphModule)")
    if out.is_dir():
        raise InputError(f"--out {path}: is a directory")
    return out


def _save_module(module: Any, example_inputs: tuple[Any, ...], out: Path, dynamic_batch: bool = True) -> Any:
    """Write ``--out``; .pt2/.onnx/.py go through graphprune.export (reloaded and compared: returns its
    EmitRecord; a batch that could not be made dynamic is a warning on stderr), .pt is a pickled
    fx.GraphModule (returns None)."""
    import torch

    if out.suffix == ".pt":
        _write("--out", out, lambda tmp: torch.save(module, tmp))
        return None
    from graphprune.export import ExportError as EmitError
    from graphprune.export import emit

    try:
        record = emit(module, tuple(example_inputs), out, dynamic_batch=dynamic_batch)
        _warn_static_batch([record.to_dict()], dynamic_batch, "--out ")
        return record
    except EmitError as exc:
        detail = str(exc).removeprefix(f"{out}: ")
        hint = "" if detail.startswith("cannot write") else \
            f" on the pruned module; save the fx.GraphModule instead with --out {out.with_suffix('.pt')}"
        raise ExportError(f"--out {out}: {detail}{hint}") from exc


def _warn_static_batch(records: list[dict[str, Any]], asked: bool, flag: str = "") -> None:
    """A dynamic batch was asked for and a file could not have one: say so on stderr, even with -q."""
    for record in records:
        if asked and record["dynamic_batch"] is False:  # the batch note is the record's last
            print(f"{PROG}: warning: {flag}{record['file']}: {record['notes'][-1]}", file=sys.stderr)


def _write(flag: str, path: Path, write: Any) -> None:
    """atomic_write, with the file mode a plain open() would give (mkstemp creates it 0600)."""
    from graphprune.io import atomic_write

    umask = os.umask(0)
    os.umask(umask)

    def write_with_mode(tmp: Path) -> None:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)

    try:
        atomic_write(path, write_with_mode)
    except OSError as exc:
        raise ExportError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from exc


def _save_report(report: Any, path: Path) -> None:
    text = report.to_json()
    _write("--report", path, lambda tmp: tmp.write_text(text))


# ------------------------------------------------------------------------------------ commands


def cmd_compile(args: argparse.Namespace) -> int:
    import graphprune
    from graphprune.plan import load_plan, with_overrides
    from graphprune.plan.schema import EMIT_FORMATS
    from graphprune.scheduler import schedule

    overrides = {"sparsity": args.sparsity, "score": args.score, "round_to": args.round_to,
                 "exact": args.exact}
    # Validate everything cheap (the plan, its pipeline, the output path) before building large models.
    plan = with_overrides(load_plan(args.plan), overrides)
    out = _check_out(args.out)
    if out is not None:  # --out replaces the plan's emit.path; this command writes it
        expected = EMIT_FORMATS.get(plan.emit.format or "")
        if expected and out.suffix != expected:
            raise InputError(f"--out {out}: suffix does not match the plan's emit.format = '{plan.emit.format}' "
                             f"(expected {expected})")
        plan = dataclasses.replace(plan, emit=dataclasses.replace(plan.emit, path=None))
    if args.data:
        plan = dataclasses.replace(plan, data={**(plan.data or {}), "name": args.data})
    if args.resume:
        if "admm" not in plan.pass_options:
            raise InputError("--resume continues ADMM training: the plan has no [admm] section")
        options = {**plan.pass_options, "admm": {**plan.pass_options["admm"], "resume": True}}
        plan = dataclasses.replace(plan, pass_options=options)
    if args.overwrite:
        if "admm" not in plan.pass_options:
            raise InputError("--overwrite restarts ADMM training: the plan has no [admm] section")
        options = {**plan.pass_options, "admm": {**plan.pass_options["admm"], "overwrite": True}}
        plan = dataclasses.replace(plan, pass_options=options)
    if args.latency:
        plan = dataclasses.replace(plan, pass_options={**plan.pass_options, "measure-latency": {}})
    if args.input_size is not None:  # the flag wins over the plan's [model] input_shape
        plan = dataclasses.replace(plan, input_shape=None)
    schedule(plan)
    report_path = Path(args.report) if args.report else None

    start = time.perf_counter()
    model, inputs = _load(args.spec, _input_size(args.input_size, plan))
    load_s = time.perf_counter() - start
    result = graphprune.compile(model, inputs, plan, name=args.spec)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun every rank trains; only rank 0 writes and prints
    _warn_static_batch(result.report.artifacts.get("emit", {}).get("files", []), plan.emit.dynamic_batch)
    extra_seconds = {"load": load_s}
    if out is not None:
        start = time.perf_counter()
        _save_module(result.module, inputs, out, plan.emit.dynamic_batch)
        extra_seconds["export" if out.suffix == ".pt2" else "save"] = time.perf_counter() - start
    if args.plot:
        from graphprune.plot import plot_widths

        plot_widths(result.report.layers, Path(args.plot), title=args.spec)
    if report_path is not None:
        _save_report(result.report, report_path)
    if not args.quiet:
        _print_compile(result.report, tuple(inputs), out, report_path, extra_seconds)
    return 0


def _reduction(ratio: float | None, before: int, after: int) -> str:
    """``3.98x (74.9%)``, or ``n/a`` where a count is 0 and no ratio means anything."""
    return "n/a" if ratio is None else f"{ratio:.2f}x ({1 - after / before:.1%})"


def _print_compile(report: Any, inputs: tuple[Any, ...], out: Path | None, report_path: Path | None,
                   extra_seconds: dict[str, float]) -> None:
    console = _console()
    shapes = ", ".join("x".join(map(str, getattr(x, "shape", ()))) for x in inputs)
    console.print(_text(f"graphprune compile {report.model}  input {shapes}  plan: {_plan_summary(report.plan)}"))
    size = _table(None, "", "before", "after", "reduction")
    size.add_row("params", f"{report.params_before:,}", f"{report.params_after:,}",
                 _reduction(report.params_reduction, report.params_before, report.params_after))
    size.add_row("MACs", f"{report.macs_before:,}", f"{report.macs_after:,}",
                 _reduction(report.macs_reduction, report.macs_before, report.macs_after))
    console.print(size)
    for warning in report.warnings:
        console.print(_text(f"warning: {warning}"))

    console.print(_text(
        f"groups: {report.groups} ({report.prunable_groups} prunable)  frozen reasons: {len(report.frozen)}  "
        f"unknown ops: {len(report.unknown_ops)}  inexact reasons: {len(report.inexact)}"))
    if report.unknown_ops:
        unknown = _table("unknown ops", "node", "op")
        for item in report.unknown_ops:
            unknown.add_row(_text(item["node"]), _text(item["op"]))
        console.print(unknown)

    seconds = _table(None, "pass", "seconds")
    for name, value in {"load": extra_seconds["load"], **report.seconds}.items():
        seconds.add_row(name, f"{value:.3f}")
    for name, value in extra_seconds.items():
        if name != "load":
            seconds.add_row(name, f"{value:.3f}")
    console.print(seconds)

    if report.budget:
        b = report.budget
        console.print(_text(f"budget: {b['metric']} asked {b['asked']:.3f} of dense, achieved {b.get('achieved', '?')} "
                            f"({'within' if b.get('within_tolerance') else 'OUTSIDE'} 2 %)"))
    for record in report.artifacts.get("emit", {}).get("files", []):
        console.print(_text(f"emitted {record['format']}: {record['file']} ({_human_bytes(record['size_bytes'])}, "
                            f"parity max-abs {record['parity_max_abs']:.2e})"))
    for label, path in (("wrote model", out), ("wrote report", report_path)):
        if path is not None:
            nbytes = path.stat().st_size
            console.print(_text(f"{label}: {path} ({_human_bytes(nbytes)}, {nbytes:,} bytes)"))


def _input_size(flag: int | None, plan: Any) -> int | None:
    if flag is not None or plan.input_shape is None:
        return flag
    return plan.input_shape[-1]


def cmd_plan(args: argparse.Namespace) -> int:
    from graphprune.plan import RECIPES, load_plan
    from graphprune.plan.recipes import recipe_summary
    from graphprune.plan.selectors import validate_selectors
    from graphprune.scheduler import schedule

    console = _console()
    if args.list or args.plan is None:
        table = _table("recipes (use as --plan NAME; copy the file to adapt it)", "name", "what it does", "file")
        for name, path in RECIPES.items():
            table.add_row(name, recipe_summary(name), _text(path))
        console.print(table)
        return 0
    plan = load_plan(args.plan)
    pipeline = schedule(plan)
    if args.model:
        model, _ = _load(args.model, _input_size(None, plan))
        validate_selectors(plan, dict(model.named_modules()))
    console.print(_text(f"plan {plan.source.name}" + (f" for {args.model}" if args.model else "")
                        + ": valid; the scheduler would run (nothing run):"))
    console.print(_text(pipeline.explain()))
    return 0


def _plan_summary(plan: dict[str, Any]) -> str:
    rules = []
    for rule in plan.get("rules", []):
        amount = (f"{rule['sparsity']:.0%}" if rule.get("sparsity") is not None
                  else f"budget {rule['budget']['metric']} {rule['budget']['ratio']}")
        rules.append(f"{'|'.join(rule['select'])} {rule['structure']} {amount} by {rule['score']}")
    spec = plan.get("allocate", {})
    extras = [f"{k} {spec[k]}" for k, default in (("scope", "local"), ("round_to", 1), ("exact", False))
              if spec.get(k, default) != default]
    return "; ".join(rules) + ("  (" + ", ".join(extras) + ")" if extras else "")


def cmd_inspect(args: argparse.Namespace) -> int:
    from graphprune.passes import run_pipeline
    from graphprune.state import CompileState
    from passes import AnalyzeChannels, Canonicalize, Trace

    model, inputs = _load(args.spec, args.input_size)
    state = run_pipeline(CompileState(args.spec, model, tuple(inputs)), [Trace(), Canonicalize(), AnalyzeChannels()])
    cg = state.channels
    console = _console()

    shown = [g for g in cg.groups if args.show_all or g.num_prunable]
    groups = _table(f"channel groups of {args.spec}" + ("" if args.show_all else " (with prunable channels)"),
                    "group", "size", "prunable", "members", "first members (fqn[dim])", "frozen reasons",
                    show_lines=True)
    for g in shown:
        # weights first: a group's BN buffers and biases say little about which layers it spans
        ordered = sorted(g.members, key=lambda m: not m.fqn.endswith(".weight"))
        names = list(dict.fromkeys(f"{m.fqn}[{m.dim}]" for m in ordered))
        fqns = ", ".join(names[:MAX_MEMBERS]) + (f", +{len(names) - MAX_MEMBERS}" if len(names) > MAX_MEMBERS
                                                  else "")
        groups.add_row(str(g.index), str(g.size), str(g.num_prunable), str(len(names)), _text(fqns),
                       _text(_reasons(g.frozen_reasons)))
    console.print(groups)

    if cg.unknown_ops:
        unknown = _table("unknown ops (channels through them are frozen)", "node", "op")
        for node, op in cg.unknown_ops:
            unknown.add_row(_text(node), _text(op))
        console.print(unknown)
    else:
        console.print("unknown ops: none")
    if cg.inexact:
        inexact = _table("inexact reasons", "reason", "count", "nodes")
        for reason, nodes in sorted(cg.inexact.items()):
            inexact.add_row(_text(reason), str(len(nodes)), _text(_nodes(nodes)))
        console.print(inexact)
    else:
        console.print("inexact reasons: none")

    frozen_groups = sum(1 for g in cg.groups if not g.num_prunable)
    hidden = len(cg.groups) - len(shown)
    channels = sum(g.size for g in cg.groups)
    prunable = sum(g.num_prunable for g in cg.groups)
    console.print(_text(
        f"total: {len(cg.groups)} groups ({len(cg.groups) - frozen_groups} prunable, {frozen_groups} fully frozen"
        + (f", {hidden} not shown: use --all" if hidden else "") + f"), {channels} channels "
        f"({prunable} prunable), {len(cg.frozen)} frozen reasons, {len(cg.unknown_ops)} unknown ops, "
        f"{len(cg.inexact)} inexact reasons"))
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    import models_zoo

    console = _console()
    table = _table("in-repo models", "name", "input shape", "description")
    for entry in models_zoo.catalog():
        table.add_row(_text(entry.name), "x".join(map(str, entry.input_shape)), _text(entry.description))
    console.print(table)
    sources = _table("namespaces (randomly initialised, never downloaded)", "prefix", "models", "example",
                     "description")
    for source in models_zoo.catalog_sources():
        count = "-" if source.count is None else str(source.count)
        sources.add_row(_text(source.prefix), count, _text(source.example), _text(source.description))
    console.print(sources)
    console.print("also: package.module:factory and path/to/file.py:factory "
                  "(a factory returning a module or (module, example_inputs))")
    return 0


# ---------------------------------------------------------------------------------------- main


def _fail(message: str) -> int:
    one_line = " ".join(str(message).split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _fail(str(exc))
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return args.func(args)
    except GraphpruneError as exc:
        return _fail(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
