"""The ``graphprune`` command line: ``compile``, ``inspect``, ``plan`` and ``zoo``.

``main(argv)`` never raises for a problem the user can act on: every ``GraphpruneError`` (bad input, a
plan error, the user's own code failing, a file that cannot be written) and every argument error is
printed as one line ``graphprune: error: <message>`` on stderr and the exit code is 2; a Ctrl-C
anywhere, start-up included, prints ``graphprune: interrupted`` and exits 130. ``--debug`` (or
``GRAPHPRUNE_DEBUG=1``) also prints the traceback. Anything else is a bug and keeps its traceback.

This module stays cheap to import (no torch): the commands import what they need inside ``main``'s
error handling. Commands: ``graphprune.cli_compile`` (compile), ``graphprune.cli_commands`` (the
others); printing: ``graphprune.cli_render``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from graphprune.cli_commands import cmd_inspect, cmd_plan, cmd_zoo
from graphprune.cli_compile import cmd_compile
from graphprune.errors import GraphpruneError

PROG = "graphprune"
DEBUG_ENV = "GRAPHPRUNE_DEBUG"


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


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


SPEC_HELP = ("model spec: zoo:NAME, torchvision:NAME, timm:NAME, package.module:factory or "
             "path/to/file.py:factory (see `graphprune zoo`)")
SIZE_HELP = "spatial input size (height = width) of the example input"
SUBMODULE_HELP = ("prune only this part of the model (a dotted module path, e.g. backbone), with the inputs it gets "
                  "when the whole model runs; needed for detection models")


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite `graphprune --debug compile ...`
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")
    return common


def build_parser() -> argparse.ArgumentParser:
    from graphprune import __version__

    parser = _Parser(prog=PROG, description="Structured pruning of PyTorch models with torch.fx.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    common = _common()
    _add_compile(sub, common)
    _add_inspect(sub, common)
    _add_plan(sub, common)
    p = sub.add_parser("zoo", help="list the models a spec can name", parents=[common],
                       description="List the in-repo models and the external model namespaces; with PATTERN, "
                                   "every model matching it and its input shape. No model is built.")
    p.add_argument("pattern", metavar="PATTERN", nargs="?",
                   help="a word (matched anywhere in the spec) or a glob such as 'timm:vit_*'")
    p.set_defaults(func=cmd_zoo)
    return parser


def _add_compile(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compile", help="prune a model and report the savings", parents=[common],
                       description="Prune a model: trace, analyse channel groups, score, remove channels. Every file "
                                   "is written at the end, all or none.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    # Option defaults are None so that a --plan file's values are not overridden by argparse defaults.
    p.add_argument("--sparsity", type=float, default=None,
                   help="fraction of every group's channels to remove, in [0, 1) (default 0.5)")
    p.add_argument("--score", default=None, metavar="CRITERION",
                   help="channel criterion for every rule: l1, l2 (default), bn-scale, taylor, fpgm, snip, grasp, "
                        "synflow, px, random")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted [admm] / [finetune] run from its checkpoint_dir (same plan and seed)")
    p.add_argument("--overwrite", action="store_true",
                   help="let a fresh [admm] / [finetune] run delete the checkpoint and metrics in its checkpoint_dir")
    p.add_argument("--epochs", type=_non_negative_float, default=None, metavar="N",
                   help="recovery epochs: replaces the plan's [finetune] epochs")
    p.add_argument("--weights", metavar="FILE", default=None,
                   help="load the model's weights from FILE: a state_dict, a checkpoint holding one (state_dict / "
                        "model key; timm's train.py), or .safetensors")
    p.add_argument("--data", metavar="SPEC", default=None,
                   help="data for data-driven passes (scoring, ADMM, finetune): a built-in (digits, shapes), "
                        "imagefolder:DIR, package.module:factory or path/to/file.py:factory")
    p.add_argument("--round-to", type=_positive_int, default=None, dest="round_to",
                   help="keep a multiple of this many channels per group (default 1)")
    p.add_argument("--exact", action="store_const", const=True, default=None,
                   help="never remove a channel whose removal changes a statistic (LayerNorm)")
    p.add_argument("--statistics", choices=("exact", "renormalize"), default=None,
                   help="LayerNorm/RMSNorm/means over removed channels: over the original width, exact where the "
                        "removed channels are zero (default), or renormalised over the kept ones")
    p.add_argument("--outputs", choices=("keep", "zero-fill"), default=None,
                   help="channels reaching a model output: frozen (keep, default), or removable with the output "
                        "scattered back into zeros of its width (zero-fill)")
    p.add_argument("--capture", choices=("fx", "export", "auto"), default=None,
                   help="how the model is captured: torch.fx, torch.export, or auto (default: fx, then export "
                        "where fx fails)")
    p.add_argument("--dynamic", choices=("auto", "all", "static"), default=None,
                   help="input sizes an export capture keeps dynamic: auto (default: the batch and token "
                        "sequence dims), all, or static (the example's sizes only)")
    p.add_argument("--plan", metavar="PLAN",
                   help="a plan: recipe name (see `graphprune plan --list`) or .toml/.yaml/.json file")
    p.add_argument("--input-size", type=_positive_int, metavar="N", dest="input_size", help=SIZE_HELP)
    p.add_argument("--submodule", metavar="PATH", help=SUBMODULE_HELP)
    p.add_argument("--out", metavar="FILE",
                   help="save the pruned model: .pt2 = torch.export program, .onnx = ONNX, .py = standalone "
                        "Python + weights, .pt = pickled fx.GraphModule")
    p.add_argument("--report", metavar="FILE", help="save the JSON compile report")
    p.add_argument("--plot", metavar="PNG", help="save a per-layer width plot (before/after bars; needs matplotlib)")
    p.add_argument("--latency", action="store_true",
                   help="measure CPU latency of dense, pruned and pruned+fused at batch 1 and 32 (into the report)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_compile)


def _add_inspect(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("inspect", help="show a model's channel groups without pruning", parents=[common],
                       description="Trace a model and show its channel groups, unknown ops and inexact "
                                   "reasons, without pruning it.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--input-size", type=_positive_int, metavar="N", dest="input_size", help=SIZE_HELP)
    p.add_argument("--submodule", metavar="PATH", help=SUBMODULE_HELP)
    p.add_argument("--all", action="store_true", dest="show_all",
                   help="also list groups with no prunable channel")
    p.add_argument("--heads", action="store_true",
                   help="only the groups whose channels are whole attention heads (what structure = 'heads' prunes)")
    p.set_defaults(func=cmd_inspect)


def _add_plan(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("plan", help="validate a plan and show the pipeline it schedules", parents=[common],
                       description="Validate a plan and print the passes the scheduler chose, in order, and why; "
                                   "nothing is run. Without PLAN (or with --list), list the recipes.")
    p.add_argument("plan", metavar="PLAN", nargs="?", help="recipe name or plan file")
    p.add_argument("--model", metavar="SPEC", help="also check the plan's selectors against this model")
    p.add_argument("--submodule", metavar="PATH", help="with --model: " + SUBMODULE_HELP)
    p.add_argument("--explain", action="store_true", help="show the pipeline and why each pass runs (default)")
    p.add_argument("--list", action="store_true", help="list the built-in recipes")
    p.set_defaults(func=cmd_plan)


# ---------------------------------------------------------------------------------------- main


def _fail(message: str) -> int:
    one_line = " ".join(str(message).split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return 2


def _debug(argv: Sequence[str]) -> bool:
    """``--debug`` anywhere before ``--``, or GRAPHPRUNE_DEBUG set to anything but 0/false/empty."""
    flags = list(argv)[:list(argv).index("--")] if "--" in argv else list(argv)
    return "--debug" in flags or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _run(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _fail(str(exc))
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(argv)
    try:
        return _run(argv)
    except GraphpruneError as exc:
        if debug:
            traceback.print_exc()
        return _fail(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
