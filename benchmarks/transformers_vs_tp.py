"""graphprune vs Torch-Pruning on Hugging Face BertModel / BertForSequenceClassification / LlamaForCausalLM.

What is measured, side by side in one process, on each model built from the small config of its ``hf:``
spec (``models_zoo/hf.py``: hidden 64, 2 layers, 4 heads, 2 KV heads; random weights, nothing downloaded)
and, with ``--large``, from a larger one (hidden 256, 4 layers, 8 heads, 4 KV heads):

* Torch-Pruning on a deepcopy, with the settings of its own examples (``benchmarks/_tp_hf.py`` says
  which): parameters before/after, whether the pruned model still runs and whether its output shapes
  stayed. Torch-Pruning has no notion of masked equivalence, so no error is reported for it.
* graphprune with ``heads`` 50 % + MLP 50 % (exact: the report lists no ``inexact`` reason and
  ``graphprune.testing.masked_equivalence_error`` is at rounding level), and a second row that also
  prunes the hidden width 50 % (``[allocate] statistics = "exact"`` where the plan schema has it, else
  the report's ``inexact`` list says what changed). graphprune never changes an output's shape: on
  BertModel the hidden width *is* ``last_hidden_state``, so that row is refused and says why; the rows
  after it add ``[allocate] outputs = "zero-fill"`` (``graphprune.zero_fill``: the output keeps its
  shape, the removed channels read zero as in the masked model), for ``last_hidden_state`` alone (the
  pooler kept, as Torch-Pruning's example keeps it) and for every output.

Run it::

    python benchmarks/transformers_vs_tp.py            # small configs; JSON + the table in docs/transformers.md
    python benchmarks/transformers_vs_tp.py --large    # also the larger configs
    python benchmarks/transformers_vs_tp.py --quick    # small BertModel + Llama, short TP timeout, no docs update
    python benchmarks/transformers_vs_tp.py --table    # reprint the table from the JSON

Seconds are one wall-clock run each (tracing included), on whatever the machine's load is.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _results  # noqa: E402
import _tp_hf  # noqa: E402
import _tp_table  # noqa: E402
import torch  # noqa: E402

RESULTS = REPO / "docs" / "results" / "transformers_vs_tp.json"
DOC = REPO / "docs" / "transformers.md"
TABLE_MARKER = "transformers-vs-tp"
TABLE_START, TABLE_END = f"<!-- {TABLE_MARKER}: start -->", f"<!-- {TABLE_MARKER}: end -->"
MODELS = ("bert", "bert-cls", "llama")
QUICK_MODELS = ("bert", "llama")
FAMILY = {"bert": "bert", "bert-cls": "bert", "llama": "llama"}
LARGE = {"bert": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, intermediate_size=1024),
         "llama": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
                       intermediate_size=688)}
HEADS = {"bert": ["*.query", "*.key", "*.value"], "llama": ["*.q_proj", "*.k_proj", "*.v_proj"]}
MLP = {"bert": "*.intermediate.dense", "llama": "*.mlp.gate_proj"}
EXACT_ERROR = 1e-4  # masked equivalence at float rounding level


def statistics_option() -> bool:
    """Whether this graphprune's plan has ``[allocate] statistics`` (the exact LayerNorm/RMSNorm rewrite)."""
    from graphprune.plan import schema

    return "statistics" in getattr(schema, "ALLOCATE_KEYS", {})


def zero_fill_option() -> bool:
    """Whether this graphprune's plan has ``[allocate] outputs`` (zero-filled output channels)."""
    from graphprune.plan import schema

    return "outputs" in getattr(schema, "ALLOCATE_KEYS", {})


def graphprune_plans(family: str, name: str = "") -> dict[str, dict[str, Any]]:
    base = [{"select": HEADS[family], "structure": "heads", "sparsity": 0.5},
            {"select": MLP[family], "sparsity": 0.5}]
    hidden: dict[str, Any] = {"prune": [*base, {"select": "*", "sparsity": 0.5}]}
    if statistics_option():
        hidden["allocate"] = {"statistics": "exact"}
    label = "heads + MLP + hidden width 50 %" + (" (statistics exact)" if statistics_option() else "")
    plans = {"heads 50 % + MLP 50 %": {"prune": base}, label: hidden}
    if name == "bert" and zero_fill_option():  # the hidden width is BertModel's last_hidden_state
        for what, outputs in ((" last_hidden_state, pooler kept", {"last_hidden_state": "zero-fill"}),
                              (" every output", "zero-fill")):
            plans[f"{label}, outputs zero-fill:{what}"] = {
                **hidden, "allocate": {**hidden.get("allocate", {}), "outputs": outputs}}
    return plans


def build(name: str, large: bool) -> tuple[torch.nn.Module, tuple[Any, ...], str]:
    """The model of ``hf:name`` (or its larger config) in eval mode, its example inputs, the config label."""
    import models_zoo
    from models_zoo import hf

    model, inputs = models_zoo.load(f"hf:{name}")
    if not large:
        return model, inputs, f"small (hf:{name})"
    import transformers

    entry = hf.ENTRIES[name]
    config = getattr(transformers, entry.config)(**{**entry.fields, **LARGE[FAMILY[name]]})
    torch.manual_seed(0)
    return getattr(transformers, entry.model)(config).eval(), inputs, "large (hidden 256, 4 layers)"


def call_kwargs(model: torch.nn.Module) -> dict[str, Any]:
    """No KV cache in the outputs we compare (graphprune's capture makes the same choice)."""
    return {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}


def output_shapes(model: torch.nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, list[int]]:
    from graphprune.interface import leaves

    with torch.no_grad():
        out = model(*inputs, **kwargs)
    return {path: list(v.shape) for path, v in leaves(out) if isinstance(v, torch.Tensor)}


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _shape_fields(dense: dict[str, list[int]], got: dict[str, list[int]] | None) -> dict[str, Any]:
    if got is None:
        return {"runs": False, "shapes_kept": None, "changed_outputs": []}
    changed = [f"{k}: {dense[k]} -> {got.get(k)}" for k in dense if got.get(k) != dense[k]]
    return {"runs": True, "shapes_kept": not changed, "changed_outputs": changed}


def tp_row(setting: str, model: torch.nn.Module, inputs: tuple[Any, ...], dense: dict, timeout: float) -> dict:
    pruned, rec = _tp_hf.run(setting, model, inputs[0], timeout)
    row = {"tool": "Torch-Pruning", "setting": _tp_hf.SETTINGS[setting][2], "tp_setting": setting, **rec,
           "params_after": None if pruned is None else params(pruned), "exact": None, "masked_err": None}
    got = None
    if pruned is not None:
        try:
            got = output_shapes(pruned, inputs, call_kwargs(pruned))
        except Exception as e:  # noqa: BLE001 - a pruned model that no longer runs is a result
            row["error"] = f"forward: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return {**row, **_shape_fields(dense, got)}


def gp_row(setting: str, plan: dict, model: torch.nn.Module, inputs: tuple[Any, ...], dense: dict) -> dict:
    import graphprune
    from graphprune.errors import PlanError
    from graphprune.testing import masked_equivalence_error

    row: dict[str, Any] = {"tool": "graphprune", "setting": setting, "plan": plan, "exact": None, "masked_err": None}
    start = time.perf_counter()
    try:
        result = graphprune.compile(model, inputs, plan)
    except PlanError as e:  # a refused plan (e.g. the hidden width is an output) is a result row
        return {**row, "status": "refused", "error": str(e).splitlines()[0], "params_after": None,
                "seconds": time.perf_counter() - start, **_shape_fields(dense, None)}
    seconds = time.perf_counter() - start
    report = result.report
    trace = report.artifacts.get("trace", {})
    err = masked_equivalence_error(model, result.module, report.kept, inputs, kwargs=trace.get("constants") or {})
    inexact = sorted({str(r.get("reason", r)) for r in report.inexact})
    got = output_shapes(result.module, inputs, {})
    return {**row, "status": "ok", "seconds": seconds, "params_after": report.params_after,
            "capture": trace.get("capture"), "inexact": inexact, "masked_err": err,
            "exact": not inexact and err < EXACT_ERROR, **_shape_fields(dense, got)}


def compare(name: str, large: bool = False, tp_timeout: float = 30.0,
            tp_settings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row for one model: Torch-Pruning's settings, then graphprune's plans, on the same dense model."""
    model, inputs, config = build(name, large)
    dense = output_shapes(model, inputs, call_kwargs(model))
    before = params(model)
    family = FAMILY[name]
    rows = [tp_row(s, model, inputs, dense, tp_timeout) for s in (tp_settings or _tp_hf.settings_for(family))]
    rows += [gp_row(s, plan, model, inputs, dense) for s, plan in graphprune_plans(family, name).items()]
    for row in rows:
        after = row["params_after"]
        row.update(model=type(model).__name__, spec=f"hf:{name}", config=config, params_before=before,
                   reduction=None if not after else before / after, dense_outputs=dense)
    return rows


def run_all(models: tuple[str, ...], large: bool, quick: bool, tp_timeout: float) -> dict[str, Any]:
    import importlib.metadata

    import transformers

    rows = [row for lg in ((False, True) if large else (False,)) for name in models
            for row in compare(name, lg, tp_timeout)]
    meta = {"quick": quick, "large": large, "tp_timeout_s": tp_timeout, "statistics_option": statistics_option(),
            "zero_fill_option": zero_fill_option(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_pruning": importlib.metadata.version("torch-pruning"), "python": platform.python_version(),
            "threads": torch.get_num_threads()}
    return {"meta": meta, "rows": rows}


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--models", default=None, help=f"comma-separated hf: names (default: {','.join(MODELS)})")
    ap.add_argument("--large", action="store_true", help="also the larger configs (hidden 256, 4 layers)")
    ap.add_argument("--quick", action="store_true", help="small BertModel and Llama, 10 s TP timeout, no docs update")
    ap.add_argument("--tp-timeout", type=float, default=None, help="seconds per Torch-Pruning setting (default 30)")
    ap.add_argument("--json-out", type=Path, default=None, help=f"default: {RESULTS.relative_to(REPO)} "
                    "(--quick: transformers_vs_tp_quick.json next to it)")
    ap.add_argument("--table", action="store_true", help="only print the table of an existing JSON")
    args = ap.parse_args(argv)
    path = args.json_out or (RESULTS.with_name("transformers_vs_tp_quick.json") if args.quick else RESULTS)
    if args.table:
        print(_tp_table.render(json.loads(path.read_text())))
        return 0
    models = tuple(args.models.split(",")) if args.models else QUICK_MODELS if args.quick else MODELS
    bad = [m for m in models if m not in FAMILY]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {list(FAMILY)}")
    timeout = args.tp_timeout or (10.0 if args.quick else 30.0)
    results = run_all(models, args.large, args.quick, timeout)
    write_json(path, results)
    text = _tp_table.render(results)
    print(text)
    if not args.quick and args.json_out is None:
        _results.write_between(DOC, TABLE_MARKER, text)
    print(f"results written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
