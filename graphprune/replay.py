"""``graphprune.apply``: a saved report's pruning applied to a fresh model of the same architecture.

Why: a compile may take hours (ADMM, recovery training) and its report is small; the same pruning must
be reproducible on another copy of the model (the user's own checkpoint, another machine) without
re-running the search. The report's ``kept`` lists, for every tensor whose shape changed, the kept
indices in the dense numbering, whatever number of rounds produced them.

How: the fresh model is traced and its channel groups analysed exactly as ``compile`` does; every
member tensor's kept indices mark its channels kept or removed (a channel the report keeps in one
tensor and removes in another is a mismatch); ``remove-channels`` then removes them in one round,
with its usual verification. The result is accepted only if its own ``kept`` equals the report's and
the dense parameter count matches, so a model of another architecture is refused by name, never
pruned into something else. Weights are the fresh model's: with the compiled model's weights the two
modules compute the same outputs. Mask-level sparsity (irregular, N:M, shape masks) is not in the
report: the channels it let unused-path removal delete are, its masks are not (the compiled model's
weights are zero where masked, so loading them gives the masked function).

Returns an ``fx.GraphModule`` (``form="graphmodule"``), or with ``form="module"`` a copy of the user's own
class with its layers, width attributes and Hugging Face config resized (``graphprune.as_module``). A
compile ``Result`` may stand for the report: with the model it compiled, the copy takes the compiled
weights (``Result.as_module()``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from graphprune.as_module import check_representable, from_kept, from_result, is_result, normal_kept
from graphprune.errors import InputError, TraceError

FORMS = ("graphmodule", "module")


def apply(model: nn.Module, report: Any, example_inputs: Any = None, *, kwargs: dict[str, Any] | None = None,
          leaf_modules: tuple[type, ...] = (), form: str = "graphmodule") -> nn.Module:
    """``model`` pruned as ``report`` (a ``Report``, its ``to_dict()``, a path to its JSON, or a compile
    ``Result``) says: an ``fx.GraphModule`` (``form="graphmodule"``) or a copy of ``model``'s own class
    (``form="module"``, checked against the pruned graph on the example inputs).

    ``example_inputs`` default to inputs of the shapes the report records (random values: shapes are all
    the analysis needs). ``model`` is not mutated; the returned module owns its tensors."""
    if form not in FORMS:
        raise InputError(f"apply: form {form!r} is not supported yet (supported: {', '.join(FORMS)})")
    if form == "module" and is_result(report) and model is report.state.model:
        return from_result(report)
    data = _report_dict(report.report if is_result(report) else report)
    if form == "graphmodule":
        return graph_apply(model, data, example_inputs, kwargs, leaf_modules)[0]
    where = data.get("_source", "the report")
    check_representable(model, data.get("artifacts") or {})
    kept = normal_kept(report_kept(data, where), model)
    inputs = example_inputs if example_inputs is not None else report_inputs(data, where)
    call = dict(kwargs or {})
    try:
        graph, graph_inputs, capture_constants = graph_apply(model, data, inputs, kwargs, leaf_modules)
        call |= capture_constants  # the call the graph computes (use_cache=False)
    except TraceError as exc:  # graphprune cannot capture the model: the masked dense model is the reference
        graph, graph_inputs = None, ()
        first = (str(exc).splitlines() or [""])[0][:160]
        warnings.warn(f"apply: graphprune cannot capture {type(model).__name__} ({first}); the resized module is "
                      f"checked against the masked dense model instead of a pruned graph", stacklevel=2)
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    return from_kept(model, kept, args, call, graph, graph_inputs, data.get("artifacts") or {})


def graph_apply(model: nn.Module, data: dict[str, Any], example_inputs: Any, kwargs: dict[str, Any] | None,
                leaf_modules: tuple[type, ...]) -> tuple[fx.GraphModule, tuple[Any, ...], dict[str, Any]]:
    """The pruned graph of ``model`` for the report ``data``, its (tensor) inputs, and the forward arguments
    the capture set (``use_cache=False``: the call the graph computes)."""
    where = data.get("_source", "the report")
    kept = normal_kept(report_kept(data, where), model)
    from graphprune.api import _check_inputs
    from graphprune.codegen import materialize
    from graphprune.copy_on_write import unshare
    from graphprune.metrics import count_params
    from graphprune.passes import run_pass, run_pipeline
    from graphprune.state import CompileState, Options
    from passes import AnalyzeChannels, Canonicalize, RemoveChannels, Trace

    if data.get("params_before") is not None and count_params(model) != data["params_before"]:
        raise InputError(f"apply: {where} is for a model with {data['params_before']:,} parameters, this one has "
                         f"{count_params(model):,}: not the same architecture")
    inputs = example_inputs if example_inputs is not None else report_inputs(data, where)
    bound, _ = _check_inputs(model, inputs, kwargs)
    state = CompileState(data.get("model") or type(model).__name__, model, bound.traced,
                         options=Options(statistics=_statistics(data), outputs=_outputs(data)),
                         input_constants=bound.constants)
    splits = data.get("artifacts", {}).get("analyze-channels", {}).get("head_splits")  # structure = "heads"
    analyze = AnalyzeChannels(head_splits=tuple(splits) if splits else None)
    state = run_pipeline(state, [Trace(leaf_modules=tuple(leaf_modules)), Canonicalize(), analyze])
    keep = keep_from_kept(state, kept, where)
    state = run_pass(state.with_(keep=keep, facts=state.facts | {"keep"}), RemoveChannels(), "apply")
    got = _normal(state.kept)
    if got != kept:
        diff = sorted(set(kept) ^ set(got)) or [k for k in kept if kept[k] != got[k]]
        raise InputError(f"apply: {where} does not match this model's channel groups (first difference at "
                         f"{diff[0]}): not the same architecture or graphprune version")
    module = materialize(state.gm)
    unshare(module, model)
    return module.eval(), bound.traced, dict(state.artifacts["trace"].get("constants", {}))


def keep_from_kept(state: Any, kept: dict[str, dict[int, list[int]]], where: str) -> np.ndarray:
    """The keep decision (bool per channel label) whose removal keeps exactly ``kept``."""
    labels = state.channels.labels
    count = int(labels.max()) + 1 if len(labels) else 0
    kept_votes, removed_votes = np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
    members = state.analysis.table.members
    unknown = [f"{fqn}[{dim}]" for fqn, dims in kept.items() for dim in dims if (fqn, dim) not in members]
    if unknown:
        raise InputError(f"apply: {where} prunes {unknown[0]}, which this model does not have as a channel "
                         f"dimension ({len(unknown)} such): not the same architecture")
    for (fqn, dim), member in members.items():
        mask = np.ones(len(member.ids), dtype=bool)
        if dim in kept.get(fqn, {}):
            index = np.asarray(kept[fqn][dim], dtype=np.int64)
            if index.size and (index.min() < 0 or index.max() >= len(member.ids)):
                raise InputError(f"apply: {where} keeps index {int(index.max())} of {fqn}[{dim}], which has "
                                 f"{len(member.ids)}: not the same architecture")
            mask[:] = False
            mask[index] = True
        channel = labels[member.ids]
        kept_votes[channel[mask]] = True
        removed_votes[channel[~mask]] = True
    conflict = np.flatnonzero(kept_votes & removed_votes)
    if conflict.size:
        raise InputError(f"apply: {where} keeps a channel in one tensor and removes it in another "
                         f"({conflict.size} channels): not the same architecture")
    return ~removed_votes


def _statistics(data: Mapping[str, Any]) -> str:
    """The report's statistics mode (the removal must cut statistics as the compile did); a report from
    before the option existed renormalised them."""
    options = data.get("options")
    return options.get("statistics", "renormalize") if isinstance(options, Mapping) else "exact"


def _outputs(data: Mapping[str, Any]) -> Any:
    """The report's ``outputs`` mode (which output leaves the compile zero-filled); older reports kept them."""
    options = data.get("options")
    return options.get("outputs", "keep") if isinstance(options, Mapping) else "keep"


def _report_dict(report: Any) -> dict[str, Any]:
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if isinstance(report, Mapping):
        return dict(report)
    if isinstance(report, (str, Path)):
        path = Path(report)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"apply: report {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"apply: report {path} is not readable JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"apply: report {path} is not a compile report")
        return {**data, "_source": str(path)}
    raise InputError(f"apply: expected a Report, a dict or a path to a report, got {type(report).__name__}")


def report_kept(data: Mapping[str, Any], where: str) -> dict[str, dict[int, list[int]]]:
    if "kept" not in data or not isinstance(data["kept"], Mapping):
        raise InputError(f"apply: {where} has no 'kept' table (not a graphprune compile report)")
    return _normal(data["kept"])


def _normal(kept: Mapping[str, Any]) -> dict[str, dict[int, list[int]]]:
    """JSON turns dims into strings and tuples into lists: one form for comparisons."""
    return {str(fqn): {int(d): [int(i) for i in index] for d, index in dims.items()} for fqn, dims in kept.items()}


def report_inputs(data: Mapping[str, Any], where: str) -> tuple[torch.Tensor, ...]:
    specs = data.get("inputs")
    if not specs or any(s is None for s in specs):
        raise InputError(f"apply: {where} does not record the example inputs' shapes (an older report, or inputs "
                         "that are not plain tensors): pass example_inputs")
    g = torch.Generator().manual_seed(0)
    out = []
    for s in specs:
        dtype, shape = getattr(torch, s["dtype"]), tuple(s["shape"])
        out.append(torch.randn(shape, generator=g).to(dtype) if dtype.is_floating_point
                   else torch.zeros(shape, dtype=dtype))
    return tuple(out)
