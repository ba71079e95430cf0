"""The markdown table of ``transformers_vs_tp.py``, rendered from its JSON (never from numbers typed in).

Why separate: the docs page's table is regenerated from ``docs/results/transformers_vs_tp.json`` by the
same function the benchmark prints with, so the page and the measurement cannot drift apart.
"""

from __future__ import annotations

from typing import Any

HEADERS = ("model", "tool", "setting", "params before → after", "reduction ×", "output shapes kept?",
           "exact (masked err)", "seconds")


def _shapes(row: dict[str, Any]) -> str:
    if row["shapes_kept"] is None:
        return "-"
    if row["shapes_kept"]:
        return "yes"
    return "no: " + "; ".join(c.replace("['", "").replace("']", "") for c in row["changed_outputs"])


def _exact(row: dict[str, Any]) -> str:
    if row["tool"] != "graphprune":
        return "n/a (no masked notion)"
    if row["status"] != "ok":
        return "-"
    err = f"{row['masked_err']:.1e}"
    if row["exact"]:
        return f"yes ({err})"
    return f"no: {', '.join(row['inexact']) or 'error above rounding'} ({err})"


def _params(row: dict[str, Any]) -> str:
    if row["params_after"] is None:
        why = row.get("error", "").rsplit(": ", 1)[-1]  # the reason, without the plan path or exception type
        return f"{row['params_before']:,} → {row['status']}: {why}"
    return f"{row['params_before']:,} → {row['params_after']:,}"


def cells(row: dict[str, Any]) -> list[str]:
    reduction = "-" if row["reduction"] is None else f"{row['reduction']:.2f}×"
    return [f"{row['model']} ({row['config']})", row["tool"], row["setting"], _params(row), reduction,
            _shapes(row), _exact(row), f"{row['seconds']:.2f}"]


def notes(meta: dict[str, Any]) -> list[str]:
    stats = ("the hidden-width rows use `[allocate] statistics = \"exact\"` (LayerNorm/RMSNorm statistics over "
             "the original width)" if meta["statistics_option"] else
             "this graphprune has no `statistics` plan option yet, so removing hidden-width channels changes "
             "LayerNorm/RMSNorm statistics and those rows are reported inexact")
    return [
        f"torch {meta['torch']}, transformers {meta['transformers']}, torch-pruning {meta['torch_pruning']}, "
        f"{meta['threads']} thread(s); seconds are one wall-clock run each; Torch-Pruning timeout "
        f"{meta['tp_timeout_s']:g} s per setting{' (quick run)' if meta['quick'] else ''}.",
        "- graphprune never changes an output's shape. On BertModel the hidden width is `last_hidden_state`, "
        "so graphprune keeps it (the hidden-width row is refused and says so) while Torch-Pruning halves it: "
        "its BertModel row is a model with a different output. BertForSequenceClassification, whose output "
        "is the logits, compares the two on the same contract.",
        *(["- the `outputs zero-fill` rows (BertModel) prune the hidden width through the output: "
           "`last_hidden_state` keeps its shape and its removed channels read zero, as in the masked dense "
           "model (`[allocate] outputs`, docs/plans.md); \"last_hidden_state, pooler kept\" zero-fills that "
           "leaf alone, \"every output\" also prunes the pooler's width."] if meta.get("zero_fill_option") else []),
        f"- {stats}.",
        "- Torch-Pruning's Llama setting from `prune_llm.py` does not return on transformers 5 (building the "
        "group of a `v_proj` loops through the rotary embedding's slice/concatenation with ever larger "
        "indices); the row after it is the same pruner with q/k/v_proj not used as roots, which finishes "
        "(heads kept, hidden width and MLP pruned).",
    ]


def render(results: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in results["rows"]]
    return "\n".join([*lines, "", *notes(results["meta"])])
