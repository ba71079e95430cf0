"""What the ``graphprune`` command line prints: rich tables and one-line summaries.

Kept apart from the commands so that what is computed and how it is shown change independently. A
ratio whose count is 0 (a model with no parameter, a batch-0 input) is shown as ``n/a``, never as a
number that means nothing ("0.00x (100.0%)").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

MAX_NODES = 3  # node names shown per reason
LATENCY_COLUMNS = ("median ms", "min ms", "max ms", "speedup", "paired speedup")


def console(stderr: bool = False) -> Any:
    """A rich console on stdout (stderr when a report is written through to stdout)."""
    from rich.console import Console

    out = Console(stderr=stderr, markup=False, highlight=False, emoji=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 160  # piped or captured: do not wrap fqns at 80 columns
    return out


def table(title: str | None = None, *columns: str, **kwargs: Any) -> Any:
    from rich.table import Table

    out = Table(title=title, title_justify="left", **kwargs)
    for column in columns:
        right = column in {"before", "after", "reduction", "seconds", "size", "prunable", "group",
                           "members", "models", "count", "batch", *LATENCY_COLUMNS}
        out.add_column(column, justify="right" if right else "left", overflow="fold")
    return out


def text(value: Any) -> Any:
    from rich.text import Text

    return Text(str(value))


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def reduction(before: int, after: int) -> str:
    """``2.00x (50.0%)``: how many times smaller and the fraction removed; ``n/a`` when a count is 0."""
    if before <= 0 or after <= 0:
        return "n/a"
    return f"{before / after:.2f}x ({1 - after / before:.1%})"


def nodes(names: Sequence[str]) -> str:
    head = ", ".join(names[:MAX_NODES])
    return head + (f", +{len(names) - MAX_NODES}" if len(names) > MAX_NODES else "")


def reasons(by_reason: dict[str, list[str]]) -> str:
    return "\n".join(f"{reason} ({nodes(names)})" for reason, names in sorted(by_reason.items()))


def plan_summary(plan: dict[str, Any]) -> str:
    rules = []
    for rule in plan.get("rules", []):
        amount = (f"{rule['sparsity']:.0%}" if rule.get("sparsity") is not None
                  else f"budget {rule['budget']['metric']} {rule['budget']['ratio']}")
        rules.append(f"{'|'.join(rule['select'])} {rule['structure']} {amount} by {rule['score']}")
    spec = plan.get("allocate", {})
    extras = [f"{k} {spec[k]}" for k, default in (("scope", "local"), ("round_to", 1), ("exact", False))
              if spec.get(k, default) != default]
    return "; ".join(rules) + ("  (" + ", ".join(extras) + ")" if extras else "")


ACCURACY_ROWS = (("before pruning", "dense"), ("after pruning", "pruned"), ("after recovery", "recovered"))


def print_accuracy(out: Any, record: dict[str, Any] | None) -> None:
    """What the recovery pass measured: accuracy and loss before pruning, after pruning, after recovery."""
    if not record:
        return
    how = "distilled from the dense model" if record.get("distill") else "fine-tuned"
    accuracy = table(f"accuracy ({record['measured_on']}, {record['examples']} examples)", "", "accuracy", "loss")
    for column in accuracy.columns[1:]:
        column.justify = "right"
    for label, key in ACCURACY_ROWS:
        acc, loss = record["accuracy"].get(key), record["loss"].get(key)
        epochs = f"{record['epochs']:g} epoch{'' if record['epochs'] == 1 else 's'}"
        name = f"{label} ({how}, {epochs})" if key == "recovered" else label
        accuracy.add_row(name, "n/a" if acc is None else f"{acc:.2%}", "n/a" if loss is None else f"{loss:.4f}")
    out.print(accuracy)
    resumed = record.get("resumed_from")
    if resumed:
        out.print(text(f"finetune resumed from step {resumed['step']} of {resumed['checkpoint']}"))


def print_compile(out: Any, report: Any, inputs: tuple[Any, ...], seconds: dict[str, float],
                  written: Iterable[tuple[str, Any, int]]) -> None:
    """The compile summary: sizes, groups, unknown ops, pass times, budget, emitted and written files
    (``written``: (label, path, bytes) of every file the command wrote)."""
    shapes = ", ".join("x".join(map(str, getattr(x, "shape", ()))) for x in inputs)
    out.print(text(f"graphprune compile {report.model}  input {shapes}  plan: {plan_summary(report.plan)}"))
    size = table(None, "", "before", "after", "reduction")
    size.add_row("params", f"{report.params_before:,}", f"{report.params_after:,}",
                 reduction(report.params_before, report.params_after))
    size.add_row("MACs", f"{report.macs_before:,}", f"{report.macs_after:,}",
                 reduction(report.macs_before, report.macs_after))
    out.print(size)
    for warning in getattr(report, "warnings", ()):
        out.print(text(f"warning: {warning}"))

    out.print(text(
        f"groups: {report.groups} ({report.prunable_groups} prunable)  frozen reasons: {len(report.frozen)}  "
        f"unknown ops: {len(report.unknown_ops)}  inexact reasons: {len(report.inexact)}"))
    if report.unknown_ops:
        unknown = table("unknown ops", "node", "op")
        for item in report.unknown_ops:
            unknown.add_row(text(item["node"]), text(item["op"]))
        out.print(unknown)

    if "latency" in report.artifacts:
        print_latency(out, report.artifacts["latency"], report.macs_before, report.macs_after)

    times = table(None, "pass", "seconds")
    for name, value in {"load": seconds["load"], **report.seconds}.items():
        times.add_row(name, f"{value:.3f}")
    for name, value in seconds.items():
        if name != "load":
            times.add_row(name, f"{value:.3f}")
    out.print(times)

    if report.budget:
        b = report.budget
        from graphprune.allocation import BUDGET_TOLERANCE  # here: the CLI's startup imports no numpy/torch

        tolerance = b.get("tolerance", BUDGET_TOLERANCE)
        measured = f" measured on {b['backend']} over {len(b['compiles'])} compiles" if "compiles" in b else ""
        out.print(text(f"budget: {b['metric']} asked {b['asked']:.3f} of dense, achieved {b.get('achieved', '?')}"
                       f"{measured} ({'within' if b.get('within_tolerance') else 'OUTSIDE'} {tolerance:.0%})"))
    layout = report.artifacts.get("layout")
    if layout:
        out.print(text(f"layout: {layout['memory_format']} (asked {layout['asked']}: {layout['why']})"))
    print_accuracy(out, report.artifacts.get("finetune"))
    for record in report.artifacts.get("emit", {}).get("files", []):
        out.print(text(f"emitted {record['format']}: {record['file']} ({human_bytes(record['size_bytes'])}, "
                       f"parity max-abs {record['parity_max_abs']:.2e})"))
    for label, path, nbytes in written:
        out.print(text(f"wrote {label}: {path} ({human_bytes(nbytes)}, {nbytes:,} bytes)"))


def print_latency(out: Any, record: dict[str, Any], macs_before: int, macs_after: int) -> None:
    """The measure-latency artifact as a table (a row per batch size and variant), then how the fastest
    pruned variant's speedup compares with the MAC reduction, the figure a pruned model is judged by."""
    baseline, threads = record.get("baseline", "dense"), record.get("threads")
    where = f"CPU, {threads} thread{'' if threads == 1 else 's'}" if threads else "CPU"
    rows = table(f"latency ({where}; speedup over {baseline}; paired: median of per-round ratios)", "batch",
                 "variant", *LATENCY_COLUMNS)
    for batch, variants in record.get("batches", {}).items():
        for name, t in variants.items():
            rows.add_row(str(batch), text(name), *(_ms(t.get(k)) for k in ("median_ms", "min_ms", "max_ms")),
                         *(_times(t.get(k)) for k in ("speedup", "paired_speedup")))
    out.print(rows)
    if macs_before <= 0 or macs_after <= 0:
        return
    mac_reduction = macs_before / macs_after
    ratios = []
    for batch, variants in record.get("batches", {}).items():
        best = max((t["speedup"] for name, t in variants.items() if name != baseline and "speedup" in t), default=None)
        if best is not None:
            ratios.append(f"{best / mac_reduction:.2f} at batch {batch}")
    if ratios:
        out.print(text(f"MACs reduced {mac_reduction:.2f}x; fastest pruned speedup / MAC reduction: "
                       + ", ".join(ratios)))


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _times(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"
