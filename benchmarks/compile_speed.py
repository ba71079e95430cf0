"""Compile-speed benchmark: graphprune vs. Torch-Pruning, "trace -> pruned model".

What is measured
----------------
For each model (torchvision, ``weights=None``, eval mode, one random ``1x3xSxS`` input, S=224 by
default) and each tool, the wall time and the peak resident memory of going from a dense
``nn.Module`` to a structurally pruned one at 50% channel sparsity:

* ``graphprune``:    ``graphprune.compile(model, (x,), sparsity=0.5).module``
  (if ``graphprune.compile`` cannot be imported the column reads "n/a" and the reason is kept in
  the JSON output).
* ``torch-pruning``: ``tp.pruner.BasePruner(model, x, importance=GroupMagnitudeImportance(p=2),
  pruning_ratio=0.5, ignored_layers=[final classifier])`` followed by ``pruner.step()``.
  For ViT (``--tp-mha``, default ``groups``): ``out_channel_groups={mha: mha.num_heads}`` for every
  ``nn.MultiheadAttention``, as in Torch-Pruning's torchvision example (its deprecated name is
  ``channel_groups``), so the width is cut by the same amount inside every head; after the step
  ``model.hidden_dim`` is set to the pruned width, as that example does (torchvision's ViT reshapes
  with it).  ``--tp-mha num_heads`` passes ``num_heads={mha: mha.num_heads}`` instead (the form TP's
  timm/HF examples use); with torchvision's fused ``nn.MultiheadAttention`` TP 1.6 then skips the
  residual/attention group altogether and only the MLP hidden layers get pruned.  ``--tp-mha none``
  passes neither (runs, but mixes channels across heads).

``--capture fx|export|auto`` chooses graphprune's capture (``auto``, the default, is ``compile``'s own:
torch.fx, and torch.export where fx cannot trace; the JSON records which ran).  ``--also-capture export``
times a second graphprune column with that capture (tool ``graphprune@export``), alternating with the
others, and adds its time, its ratio to the main graphprune column and its MACs after pruning.

The timed region is only trace + analysis + prune (for Torch-Pruning: building the dependency graph
inside ``BasePruner(...)`` plus ``step()``).  Importing the tool (for graphprune: ``graphprune`` and
its pass registry ``passes``, which ``compile`` would otherwise import on first use) and constructing
the model happen before the clock starts.  The two tools' runs alternate (gp, TP, gp, TP, ...) so
that a change in machine load hits both alike; ratios are the ratio of the medians.

Every (tool, model, repeat) runs in a fresh Python process so that memory numbers are per
measurement:

* ``peak RSS``  = ``getrusage(RUSAGE_SELF).ru_maxrss`` read right after pruning.  Just before the
  clock starts the kernel's high-water mark is reset to the current RSS (``/proc/self/clear_refs``,
  Linux) so the peak is not dominated by model construction; the JSON says whether that worked
  (``hwm_reset``).  The absolute peak therefore includes torch, the tool and the dense model.
* ``delta RSS`` = peak RSS - RSS right after model construction (after a gc + malloc_trim).

Time is the median over ``--repeats`` runs; RSS numbers are the median as well.  After the timed
region each child does one real forward pass of the pruned model under
``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2; nn.MultiheadAttention's fused
inference fast path is switched off while counting, since the counter cannot see inside it); the
parent checks the output shape against the dense model's ("(shape!)" after the time if it differs,
"fwd ERR" if the pruned model does not run).  The dense reference (MACs before, output shape) comes
from one more fresh process per model (tool "dense").

Run it
------
    python benchmarks/compile_speed.py                                  # all models, both tools
    python benchmarks/compile_speed.py --models resnet50,vit_b_16 --repeats 1
    python benchmarks/compile_speed.py --tools torch-pruning --json-out runs/compile_speed.json
    python benchmarks/compile_speed.py --one torch-pruning resnet50 --json   # one child measurement
    python benchmarks/compile_speed.py --capture fx --also-capture export --repeats 1   # fx vs torch.export

    # before/after: also time an older commit's graphprune, interleaved with the other two
    git archive <commit> | tar -x -C /tmp/gp_before
    python benchmarks/compile_speed.py --baseline /tmp/gp_before --markdown

It is CPU-bound and slow on small machines (several minutes per large model and tool with the
default 3 repeats); progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Any

import _measure  # next to this file; run this as a script, not with -m

REPO = Path(__file__).resolve().parent.parent
MODELS = ("resnet50", "densenet201", "efficientnet_b7", "regnet_y_16gf", "vit_b_16", "convnext_base")
TOOLS = ("graphprune", "torch-pruning")
BASELINE = "graphprune-baseline"  # graphprune imported from --baseline PATH (e.g. an older commit's tree)
CAPTURES = ("auto", "fx", "export")  # graphprune's capture (--capture); "graphprune@export" is a second column
SPARSITY = 0.5


# --------------------------------------------------------------------------------------------------
# child side: one measurement


def build_model(name: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


def final_classifier(model):
    """The output layer (kept unpruned): the last nn.Linear in module order.  For the models here
    that is ``fc`` (resnet, regnet), ``classifier`` (densenet), ``classifier[-1]`` (efficientnet,
    convnext) and ``heads.head`` (vit)."""
    from torch import nn

    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear) and not isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear):
            last = m
    if last is None:
        raise ValueError(f"no nn.Linear output layer found in {type(model).__name__}")
    return last


def _tool_capture(tool: str, capture: str) -> str:
    """The capture a graphprune tool runs with: ``graphprune@export`` names its own, the others --capture."""
    return tool.split("@", 1)[1] if tool.startswith("graphprune@") else capture


def _load_tool(tool: str, tp_mha: str = "groups", baseline_root: Path | None = None, capture: str = "auto"):
    """Import the tool and return ``prune(model, x) -> pruned_module``.  Raises ``_Unavailable``
    if the tool's entry point does not exist (yet)."""
    if tool in ("graphprune", BASELINE) or tool.startswith("graphprune@"):
        # The working tree's graphprune (or the --baseline checkout's), not an installed copy.
        root = str(baseline_root if tool == BASELINE else REPO)
        if root not in sys.path:
            sys.path.insert(0, root)
        try:
            import graphprune
            import passes  # noqa: F401  - the pass registry compile() imports on first use: part of the tool

            compile_fn = graphprune.compile
        except (ImportError, AttributeError) as e:
            raise _Unavailable(f"graphprune.compile unavailable: {type(e).__name__}: {e}") from e

        # "auto" is compile's default: not passed, so a --baseline tree older than the option still runs
        kw = {} if _tool_capture(tool, capture) == "auto" else {"capture": _tool_capture(tool, capture)}

        def prune(model, x):
            result = compile_fn(model, (x,), sparsity=SPARSITY, **kw)
            CAPTURE_RAN[:] = [result.report.artifacts.get("trace", {}).get("capture", "fx")]
            return result.module

        return prune

    if tool == "torch-pruning":
        try:
            import torch_pruning as tp
        except ImportError as e:
            raise _Unavailable(f"torch_pruning unavailable: {e}") from e
        from torch import nn
        from torchvision.models.vision_transformer import VisionTransformer

        pruner_cls = getattr(tp.pruner, "BasePruner", None) or tp.pruner.MagnitudePruner

        def prune(model, x):
            heads = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
            # Fresh dicts every time: BasePruner mutates its (shared, mutable) defaults for these.
            kw: dict[str, Any] = {"in_channel_groups": {}, "out_channel_groups": {}, "num_heads": {}}
            if heads and tp_mha == "groups":
                kw["out_channel_groups"] = heads
            elif heads and tp_mha == "num_heads":
                kw["num_heads"] = heads
            pruner = pruner_cls(
                model,
                example_inputs=x,
                importance=tp.importance.GroupMagnitudeImportance(p=2),
                pruning_ratio=SPARSITY,
                ignored_layers=[final_classifier(model)],
                **kw,
            )
            pruner.step()
            if isinstance(model, VisionTransformer):
                # torchvision's ViT reshapes with self.hidden_dim; TP's own example patches it too.
                model.hidden_dim = model.conv_proj.out_channels
            return model

        return prune

    raise ValueError(f"unknown tool {tool!r}")


class _Unavailable(Exception):
    pass


CAPTURE_RAN: list[str] = []  # the capture graphprune's last compile used (its report says)


def _short_error(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]


def measure_one(tool: str, model_name: str, input_size: int, tp_mha: str = "groups",
                baseline_root: Path | None = None, capture: str = "auto") -> dict[str, Any]:
    import torch

    res: dict[str, Any] = {
        "tool": tool, "model": model_name, "input_size": input_size,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    if tool == "dense":
        model = build_model(model_name)
        x = torch.randn(1, 3, input_size, input_size)
        res.update(status="ok", **_measure.forward_stats(model, (x,)))
        return res

    try:
        prune = _load_tool(tool, tp_mha, baseline_root, capture)
    except _Unavailable as e:
        res.update(status="n/a", error=str(e))
        return res
    if tool == "torch-pruning":
        import importlib.metadata

        import torch_pruning as tp

        # the wheel's metadata and tp.__version__ can disagree (1.6.1 wheel says "1.6.0")
        res["tool_version"] = importlib.metadata.version("torch-pruning")
        res["tool_version_attr"] = getattr(tp, "__version__", "?")
        res["tp_pruner"] = "BasePruner" if hasattr(tp.pruner, "BasePruner") else "MagnitudePruner"
        res["tp_mha"] = tp_mha

    model = build_model(model_name)
    x = torch.randn(1, 3, input_size, input_size)
    _measure.settle_memory()
    res["rss_after_build_mb"] = _measure.current_rss_mb()
    res["maxrss_after_build_mb"] = _measure.peak_rss_mb()
    res["hwm_reset"] = _measure.reset_peak_rss()

    try:
        with _measure.Stopwatch() as sw:
            pruned = prune(model, x)
    except Exception as e:  # noqa: BLE001 - any tool failure is a result, not a crash
        res.update(status="error", error=_short_error(e), traceback=traceback.format_exc()[-4000:])
        return res
    res["seconds"] = sw.seconds
    res["cpu_seconds"] = sw.cpu_seconds
    res["peak_rss_mb"] = _measure.peak_rss_mb()
    res["delta_rss_mb"] = res["peak_rss_mb"] - res["rss_after_build_mb"]
    res["status"] = "ok"
    if CAPTURE_RAN:
        res["capture"] = CAPTURE_RAN[0]

    # Untimed: check the result actually runs, and count its MACs.
    del model
    try:
        stats = _measure.forward_stats(pruned, (x,))
        res.update(macs_after=stats["macs"], out_shape=stats["out_shape"], params_after=stats["params"])
    except Exception as e:  # noqa: BLE001
        res["forward_error"] = _short_error(e)
    return res


# --------------------------------------------------------------------------------------------------
# parent side: orchestration and table


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_child(tool: str, model: str, args) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", tool, model, "--json",
           "--input-size", str(args.input_size), "--tp-mha", args.tp_mha, "--capture", args.capture]
    if args.baseline is not None:
        cmd += ["--baseline", str(args.baseline)]
    res = _measure.run_child(cmd, timeout=args.timeout, log=lambda s: _log("    | " + s.replace("\n", "\n    | ")))
    res.setdefault("tool", tool)
    res.setdefault("model", model)
    return res


def summarize(dense: dict, runs: list[dict]) -> dict[str, Any]:
    """Fold the repeats of one (tool, model) into one record."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        first = runs[0] if runs else {"status": "error", "error": "no run"}
        return {"status": first.get("status", "error"), "error": first.get("error", "?"), "runs": runs}
    out_shape = ok[0].get("out_shape")
    dense_shape = dense.get("out_shape")
    return {
        "status": "ok",
        "seconds": _measure.median([r["seconds"] for r in ok]),
        "seconds_all": [r["seconds"] for r in ok],
        "cpu_seconds": _measure.median([r.get("cpu_seconds") for r in ok]),
        "peak_rss_mb": _measure.median([r["peak_rss_mb"] for r in ok]),
        "delta_rss_mb": _measure.median([r["delta_rss_mb"] for r in ok]),
        "rss_after_build_mb": _measure.median([r["rss_after_build_mb"] for r in ok]),
        "macs_after": ok[0].get("macs_after"),
        "params_after": ok[0].get("params_after"),
        "out_shape": out_shape,
        "shape_ok": (out_shape == dense_shape) if out_shape is not None and dense_shape is not None else None,
        "forward_error": ok[0].get("forward_error"),
        "capture": ok[0].get("capture"),
        "failed_repeats": len(runs) - len(ok),
        "runs": runs,
    }


def _fmt_macs(v: int | None) -> str:
    return "-" if v is None else f"{v / 1e9:.2f} G"


def _fmt_mb(r: dict) -> str:
    if r.get("status") != "ok":
        return "-"
    return f"{r['peak_rss_mb']:.0f} (+{r['delta_rss_mb']:.0f})"


def _fmt_time(r: dict | None) -> str:
    if r is None:
        return "-"
    if r.get("status") == "n/a":
        return "n/a"
    if r.get("status") != "ok":
        return "ERR: " + r.get("error", "?")
    s = f"{r['seconds']:.2f}"
    if r.get("shape_ok") is False:
        s += " (shape!)"
    if r.get("forward_error"):
        s += " (fwd ERR)"
    return s


def _fmt_after(r: dict | None) -> str:
    if r is None or r.get("status") != "ok":
        return "-"
    if r.get("forward_error"):
        return "fwd ERR: " + r["forward_error"]
    return _fmt_macs(r.get("macs_after"))


def speed_ratio(gp: dict | None, tp: dict | None) -> float | None:
    if gp and tp and gp.get("status") == "ok" and tp.get("status") == "ok" and gp["seconds"] > 0:
        return tp["seconds"] / gp["seconds"]
    return None


def notes_text(args) -> str:
    return (f"time = median of {args.repeats} fresh-process run(s), trace+analysis+prune only; "
            f"RSS = absolute peak (+ delta over RSS after model construction), MiB; "
            f"sparsity {SPARSITY}, input 1x3x{args.input_size}x{args.input_size}; graphprune capture {args.capture}")


def _also_capture_cells(rec: dict, args, ratios: list[float]) -> list[str]:
    """The --also-capture columns: that capture's time, its ratio to the main graphprune column, its MACs."""
    gp, other = rec["tools"].get("graphprune"), rec["tools"].get(f"graphprune@{args.also_capture}")
    ratio = speed_ratio(other, gp)  # (main graphprune s) / (other capture s): invert for other/main
    if ratio is not None:
        ratios.append(1 / ratio)
    ran = f" ({other['capture']})" if other and other.get("capture") else ""
    return [_fmt_time(other) + ran, "-" if ratio is None else f"{1 / ratio:.2f}x", _fmt_after(other)]


def render_table(results: dict[str, dict], args) -> str:
    with_base = any(BASELINE in rec["tools"] for rec in results.values())
    headers = ["model", "graphprune s", "TP s", "speed ratio (TP/graphprune)",
               "graphprune peak RSS MB", "TP peak RSS MB", "MACs before", "MACs after gp", "MACs after TP"]
    if with_base:
        headers[2:2] = ["baseline s"]
        headers[5:5] = ["ratio (TP/baseline)"]
    also = args.also_capture
    if also:
        headers += [f"graphprune[{also}] s", f"time {also}/{args.capture}", f"MACs after gp[{also}]"]
    rows, ratios, base_ratios, also_ratios = [], [], [], []
    for model, rec in results.items():
        gp, tp = rec["tools"].get("graphprune"), rec["tools"].get("torch-pruning")
        ratio = speed_ratio(gp, tp)
        if ratio is not None:
            ratios.append(ratio)
        dense_macs = rec["dense"].get("macs") if rec["dense"].get("status") == "ok" else None
        row = [
            model, _fmt_time(gp), _fmt_time(tp), "-" if ratio is None else f"{ratio:.2f}x",
            _fmt_mb(gp) if gp else "-", _fmt_mb(tp) if tp else "-",
            _fmt_macs(dense_macs) if dense_macs is not None else "ERR: " + rec["dense"].get("error", "?"),
            _fmt_after(gp), _fmt_after(tp),
        ]
        if with_base:
            base = rec["tools"].get(BASELINE)
            base_ratio = speed_ratio(base, tp)
            if base_ratio is not None:
                base_ratios.append(base_ratio)
            row[2:2] = [_fmt_time(base)]
            row[5:5] = ["-" if base_ratio is None else f"{base_ratio:.2f}x"]
        if also:
            row += _also_capture_cells(rec, args, also_ratios)
        rows.append(row)
    med = _measure.median(ratios)
    footer = ("median speed ratio (TP/graphprune): "
              + (f"{med:.2f}x over {len(ratios)} model(s)" if med is not None else "n/a (no model with both tools ok)"))
    if with_base and base_ratios:
        footer += f"; baseline: {_measure.median(base_ratios):.2f}x"
    if also and also_ratios:
        footer += f"; median compile time {also}/{args.capture}: {_measure.median(also_ratios):.2f}x"
    if args.markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join([*lines, "", notes_text(args), footer])
    notes = notes_text(args)

    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
        body = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join([line, "-+-".join("-" * w for w in widths), *body, "", notes, footer])

    table = Table(title="trace -> pruned model: graphprune vs Torch-Pruning")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        table.add_row(*r)
    console = Console(width=max(160, Console().width), record=True)
    with console.capture() as cap:
        console.print(table)
        console.print(notes, highlight=False, soft_wrap=True)
        console.print(footer, highlight=False, soft_wrap=True)
    return cap.get()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default: {','.join(MODELS)})")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated (default: {','.join(TOOLS)})")
    ap.add_argument("--repeats", type=int, default=3, help="fresh-process runs per (tool, model); median time")
    ap.add_argument("--input-size", type=int, default=224, help="spatial size S of the 1x3xSxS input")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    ap.add_argument("--json-out", type=Path, help="write raw results (every run) to this file")
    ap.add_argument("--tp-mha", choices=("groups", "num_heads", "none"), default="groups",
                    help="how Torch-Pruning is told about nn.MultiheadAttention (ViT); see the module docstring")
    ap.add_argument("--baseline", type=Path,
                    help=f"also time graphprune imported from this tree (tool '{BASELINE}'), e.g. an older "
                         "commit's `git archive` unpacked, for before/after tables")
    ap.add_argument("--capture", choices=CAPTURES, default="auto",
                    help="graphprune's capture (torch.fx, torch.export, or auto: fx, export where fx fails)")
    ap.add_argument("--also-capture", choices=CAPTURES,
                    help="also time graphprune with this capture (tool 'graphprune@CAPTURE'), in its own columns")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--one", nargs=2, metavar=("TOOL", "MODEL"),
                    help="child mode: do one measurement in this process (TOOL may also be 'dense')")
    ap.add_argument("--json", action="store_true", help="child mode: emit the result as a JSON line")
    args = ap.parse_args(argv)

    if args.one:
        tool, model = args.one
        try:
            res = measure_one(tool, model, args.input_size, args.tp_mha, args.baseline, args.capture)
        except Exception as e:  # noqa: BLE001 - e.g. unknown model name, or the dense forward failing
            res = {"tool": tool, "model": model, "status": "error", "error": _short_error(e),
                   "traceback": traceback.format_exc()[-4000:]}
        if args.json:
            _measure.emit_result(res)
        else:
            print(json.dumps({k: v for k, v in res.items() if k != "traceback"}, indent=2, default=str))
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        ap.error(f"unknown tool(s) {bad}; choose from {list(TOOLS)}")
    if args.baseline is not None:
        if not (args.baseline / "graphprune").is_dir():
            ap.error(f"--baseline {args.baseline}: no graphprune/ package there")
        tools.insert(1, BASELINE)
    if args.also_capture:
        tools.insert(1, f"graphprune@{args.also_capture}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load_before and load_before[0] > (os.cpu_count() or 1) * 0.5:
        _log(f"warning: 1-min load average is {load_before[0]:.1f} on {os.cpu_count()} CPU(s); "
             "timings will be noisy (compare cpu_seconds in --json-out)")
    results: dict[str, dict] = {}
    for model in models:
        _log(f"[{model}] dense reference ...")
        dense = run_child("dense", model, args)
        if dense.get("status") != "ok":
            _log(f"[{model}]   dense failed: {dense.get('error')}")
        rec = {"dense": dense, "tools": {}}
        runs: dict[str, list[dict]] = {tool: [] for tool in tools}
        for i in range(args.repeats):  # tools alternate, so a load change hits both alike
            for tool in tools:
                if runs[tool] and runs[tool][-1].get("status") != "ok":
                    continue  # a tool that fails (or is missing) fails the same way every time
                r = run_child(tool, model, args)
                runs[tool].append(r)
                if r.get("status") == "ok":
                    _log(f"[{model}] {tool} run {i + 1}/{args.repeats}: {r['seconds']:.2f}s "
                         f"(cpu {r.get('cpu_seconds', float('nan')):.2f}s), "
                         f"peak RSS {r['peak_rss_mb']:.0f} MB (+{r['delta_rss_mb']:.0f})")
                else:
                    _log(f"[{model}] {tool} run {i + 1}/{args.repeats}: {r.get('status')}: {r.get('error')}")
        for tool in tools:
            rec["tools"][tool] = summarize(dense, runs[tool])
        results[model] = rec

    print(render_table(results, args))

    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"python": sys.version, "platform": platform.platform(), "cpus": os.cpu_count(),
                "repeats": args.repeats, "input_size": args.input_size, "sparsity": SPARSITY,
                "tp_mha": args.tp_mha, "capture": args.capture, "also_capture": args.also_capture,
                "baseline": str(args.baseline) if args.baseline else None,
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None}
        args.json_out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
        _log(f"raw results written to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
