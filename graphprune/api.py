"""``graphprune.compile``: the published entry point.

compile(model, example_inputs, plan=None, **overrides) -> Result. The default plan traces, analyses
channel groups, scores them by L2 magnitude, removes ``sparsity`` of every group's channels and
verifies the result. The user's model is never mutated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from graphprune import tensor_ops
from graphprune.allocation import BUDGET_TOLERANCE
from graphprune.capture import check_capture, check_dynamic
from graphprune.codegen import materialize
from graphprune.copy_on_write import unshare
from graphprune.errors import InputError
from graphprune.interface import BoundInputs, bind_inputs, holds_tensor, tensor_aliases, ties
from graphprune.latency import measured_fraction, timing_inputs
from graphprune.latency_budget import RESULT, meet_latency
from graphprune.latency_process import FreshProcessTimer
from graphprune.metrics import count_macs, count_params
from graphprune.plan import Plan, load_plan, with_overrides
from graphprune.plan.budget import latency_rule
from graphprune.plan.data import plan_data
from graphprune.plan.selectors import validate_selectors
from graphprune.report import LayerWidth, Report
from graphprune.scheduler import run_schedule, schedule
from graphprune.state import CompileState, Options


@dataclass
class Result:
    module: fx.GraphModule
    report: Report
    state: CompileState

    def as_module(self) -> nn.Module:
        """The compiled model's own class (not a GraphModule), its layers, width attributes and Hugging Face
        config resized, with the compiled weights; its output equals ``module``'s (``graphprune.as_module``)."""
        from graphprune.as_module import from_result

        return from_result(self)


def _check_inputs(model: Any, example_inputs: Any, kwargs: Any) -> tuple[BoundInputs, tuple[Any, ...]]:
    """The inputs bound to ``forward``, and the positional example inputs as a call passes them."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(example_inputs, torch.Tensor) or isinstance(example_inputs, dict) and kwargs is None:
        example_inputs = (example_inputs,)
    if example_inputs is None:
        example_inputs = ()
    if not isinstance(example_inputs, (tuple, list)) or not example_inputs and not kwargs:
        raise InputError(f"example_inputs must be a tensor or a non-empty tuple of inputs, "
                         f"got {type(example_inputs).__name__}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InputError(f"kwargs must be a dict of keyword example inputs, got {type(kwargs).__name__}")
    if not any(holds_tensor(x) for x in (*example_inputs, *(kwargs or {}).values())):
        first = example_inputs[0] if example_inputs else next(iter(kwargs.values()))
        raise InputError(f"example_inputs[0] must be a torch.Tensor (or hold one), got {type(first).__name__}")
    return bind_inputs(model, tuple(example_inputs), kwargs or {}), tuple(example_inputs)


def _check_finite(model: nn.Module) -> None:
    """Scores, budgets and masked equivalence mean nothing on NaN/Inf weights: refuse, naming them. A
    buffer may hold an infinity on purpose (timm's Gemma 4 ViT keeps clipping bounds of +-inf), never a NaN.
    One sum per tensor, in numpy (``graphprune.tensor_ops``), large tensors on worker threads."""
    params = [(n, t) for n, t in model.named_parameters() if t.is_floating_point() and t.numel()]
    buffers = [(n, t) for n, t in model.named_buffers() if t.is_floating_point() and t.numel()]
    finite = tensor_ops.map_large(lambda item: tensor_ops.all_finite(item[1]), params, lambda item: item[1].numel())
    nan = tensor_ops.map_large(lambda item: tensor_ops.has_nan(item[1]), buffers, lambda item: item[1].numel())
    bad = [n for (n, _), ok in zip(params, finite) if not ok] + [n for (n, _), no in zip(buffers, nan) if no]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise InputError(f"the model has non-finite (NaN/Inf) values in {', '.join(bad[:3])}{more}: "
                         f"fix or re-initialise them before pruning")


def _warnings(state: CompileState, macs_before: int) -> list[str]:
    out = []
    if state.channels is not None and not any(g.num_prunable for g in state.channels.groups):
        out.append("nothing to prune: no channel group is prunable (every channel reaches an output or is "
                   "frozen; see 'frozen'), the model is returned unchanged")
    latency = state.artifacts.get(RESULT)
    if latency is not None and not latency["within_tolerance"]:
        out.append(f"latency budget missed: asked {latency['asked']} of the dense latency, measured "
                   f"{latency['achieved']} after {len(latency['compiles'])} compiles (tolerance "
                   f"{latency['tolerance']:.0%}); see budget.compiles")
    if macs_before == 0:
        out.append("the model does 0 MACs on the example inputs (no conv/linear/matmul work, or an empty batch): "
                   "MAC reductions are not defined")
    return out


def _options(plan: Plan) -> Options:
    """The flat options of the plan's first rule, kept in the state for passes written against them."""
    rule = plan.rules[0]
    spec = plan.allocate
    return Options(sparsity=rule.sparsity if rule.sparsity is not None else 0.0, score=rule.score,
                   round_to=spec.round_to, min_channels=spec.min_channels, exact=spec.exact,
                   statistics=spec.statistics, outputs=spec.outputs)


def _check_plan_against(plan: Plan, model: nn.Module, inputs: tuple[Any, ...]) -> None:
    if plan.input_shape is not None and isinstance(inputs[0], torch.Tensor) \
            and tuple(inputs[0].shape) != plan.input_shape:
        raise plan.error("model.input_shape", f"{list(plan.input_shape)} does not match example_inputs[0] "
                                              f"of shape {list(inputs[0].shape)}")
    validate_selectors(plan, dict(model.named_modules()))


def compile(model: nn.Module, example_inputs: Any = (), plan: Any = None, *, kwargs: dict[str, Any] | None = None,
            name: str | None = None, leaf_modules: tuple[type, ...] = (), data: Any = None,
            val_data: Any = None, capture: str | None = None, dynamic: str | None = None,
            **overrides: Any) -> Result:
    """Prune ``model`` into a smaller fx.GraphModule computing the masked dense function.

    ``example_inputs`` (positional) and ``kwargs`` (keyword example inputs) are bound to ``forward``
    as a call would bind them; tensors and containers of tensors become the module's inputs, other
    values (flags, ``None``) are traced as constants. The pruned module takes the tensor inputs in
    ``forward``'s order and returns the same output structure with the same leaf shapes.
    ``plan``: None (remove 50 % of every group by L2 magnitude), a recipe name, a TOML/YAML/JSON path,
    a dict or a ``Plan``; keyword overrides (``sparsity``, ``score``, ``round_to``, ``min_channels``, ``exact``,
    ``scope``, ``max_per_group``, ``statistics``, ``outputs``) apply on top. ``data``: (input, target) batches for
    data-driven passes (else the plan's ``[data]``, read by the registered loader: ``graphprune.plan.data``);
    ``val_data``: validation batches for the accuracy
    a recovery pass measures. ``capture``: ``"fx"``, ``"export"`` or ``"auto"`` (``graphprune.capture``),
    over the plan's ``[passes.trace] capture``; ``dynamic``: ``"auto"``, ``"all"`` or ``"static"``, the input
    sizes an export capture keeps dynamic (``graphprune.capture_sizes``), over ``[passes.trace] dynamic``."""
    bound, positional = _check_inputs(model, example_inputs, kwargs)
    _check_finite(model)
    inputs = bound.traced
    plan = with_overrides(load_plan(plan), overrides)
    _check_plan_against(plan, model, inputs)
    pipeline = schedule(plan, _trace_context(leaf_modules, capture, dynamic))
    loaded = plan_data(plan, model, inputs) if data is None else None

    def compile_once(artifacts: dict[str, Any]) -> CompileState:
        state = CompileState(name or type(model).__name__, model, inputs, _options(plan), plan=plan,
                             data=data if loaded is None else loaded.train,
                             val_data=val_data if loaded is None else loaded.val,
                             artifacts={**({} if loaded is None else {"data": loaded.record}), **artifacts},
                             input_constants=bound.constants)
        return run_schedule(state, pipeline)

    rule = latency_rule(plan)
    state = compile_once({}) if rule is None else \
        _meet_latency_budget(compile_once, rule.budget, model, positional, inputs, kwargs)
    params_before = count_params(model)
    macs_before = state.macs.get("dense") or count_macs(model, inputs)
    module = materialize(state.gm)
    unshare(module, model)
    module.eval()
    report = _report(state, params_before, macs_before)
    return Result(module, report, state)


def _meet_latency_budget(compile_once: Any, budget: Any, model: nn.Module, positional: tuple[Any, ...],
                         inputs: tuple[Any, ...], kwargs: dict[str, Any] | None) -> CompileState:
    """Compile until the measured time is the budget's fraction of ``model``'s (``meet_latency``), each
    candidate timed in a fresh process where the models can be handed to one; the report says where."""
    dense_args, pruned_args = (timing_inputs(x, budget.batch) for x in (positional, inputs))
    timer = FreshProcessTimer(model, dense_args, kwargs, budget.threads) if budget.fresh_process else None

    def time_pair(state: CompileState) -> float:
        pruned = materialize(state.gm)
        fresh = None if timer is None else timer(pruned, pruned_args)
        if fresh is not None:
            return fresh
        return measured_fraction(lambda: model(*dense_args, **(kwargs or {})), lambda: pruned(*pruned_args),
                                 [model, pruned], num_threads=budget.threads)

    try:
        state = meet_latency(compile_once, time_pair, budget)
    finally:
        if timer is not None:
            timer.close()
    where = timer.measured_in if timer is not None else "the compiling process (budget.fresh_process = false)"
    return state.with_(artifacts={**state.artifacts, RESULT: {**state.artifacts[RESULT], "measured_in": where}})


def _trace_context(leaf_modules: tuple[type, ...], capture: str | None,
                   dynamic: str | None) -> dict[str, dict[str, Any]] | None:
    """The trace pass's fields the keywords set (classes a plan cannot spell; the capture overrides)."""
    fields: dict[str, Any] = {"leaf_modules": tuple(leaf_modules)} if leaf_modules else {}
    for key, value, check in (("capture", capture, check_capture), ("dynamic", dynamic, check_dynamic)):
        if value is not None:
            check(value)
            fields[key] = value
    return {"trace": fields} if fields else None


def _report(state: CompileState, params_before: int, macs_before: int) -> Report:
    cg = state.channels
    return Report(
        model=state.model_name,
        params_before=params_before,
        params_after=count_params(state.gm),
        macs_before=macs_before,
        macs_after=state.macs.get("pruned") or count_macs(state.gm, state.example_inputs),
        groups=len(cg.groups),
        prunable_groups=sum(1 for g in cg.groups if g.num_prunable),
        frozen=_frozen(state),
        unknown_ops=[{"node": n, "op": op} for n, op in cg.unknown_ops],
        inexact=_inexact(state),
        kept=state.kept,
        passes=[n for n, _ in state.history],
        seconds=_seconds(state.history),
        options={f.name: getattr(state.options, f.name) for f in fields(state.options)},
        layers=_layer_widths(state),
        plan=state.plan.to_dict() if state.plan is not None else {},
        schedule=list(state.trail),
        budget=_budget(state, macs_before, params_before),
        artifacts=dict(state.artifacts),
        tied=ties(tensor_aliases(state.model)),
        warnings=_warnings(state, macs_before),
        inputs=[{"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
                if isinstance(x, torch.Tensor) else None for x in state.example_inputs],
    )


def _inexact(state: CompileState) -> list[dict[str, Any]]:
    """What removal really cut through a statistic: per reason, the nodes and how many channels each
    lost (a statistic whose channels all stayed is exact and not listed)."""
    by_reason: dict[str, dict[str, int]] = {}
    for reason, node, removed in state.inexact_cuts:
        nodes = by_reason.setdefault(reason, {})
        nodes[node] = nodes.get(node, 0) + removed
    return [{"reason": r, "nodes": sorted(n), "removed_channels": dict(sorted(n.items()))}
            for r, n in by_reason.items()]


def _frozen(state: CompileState) -> list[dict[str, Any]]:
    """Frozen reasons of the analysis; with ``exact``, the statistics that kept their channels too."""
    cg = state.channels
    frozen = [{"reason": r, "nodes": n} for r, n in cg.frozen.items()]
    if state.plan is not None and state.plan.allocate.exact:
        frozen += [{"reason": f"exact: removal would change a statistic ({r})", "nodes": n}
                   for r, n in cg.inexact.items()]
    return frozen


def _seconds(history: tuple[tuple[str, float], ...]) -> dict[str, float]:
    total: dict[str, float] = {}
    for name, sec in history:
        total[name] = total.get(name, 0.0) + sec
    return {n: round(s, 4) for n, s in total.items()}


def _budget(state: CompileState, macs_before: int, params_before: int) -> dict[str, Any] | None:
    if RESULT in state.artifacts:  # a latency budget: measured by the loop that met it
        return dict(state.artifacts[RESULT])
    for record in state.artifacts.get("allocate", {}).values():
        if "budget" in record:
            b = dict(record["budget"])
            after = state.macs.get("pruned") if b["metric"] == "macs" else count_params(state.gm)
            before = macs_before if b["metric"] == "macs" else params_before
            if after is not None and before:
                b["achieved"] = round(after / before, 4)
                b["within_tolerance"] = abs(b["achieved"] - b["asked"]) <= BUDGET_TOLERANCE * b["asked"]
            return b
    return None


def _layer_widths(state: CompileState) -> list[LayerWidth]:
    widths = []
    for name, module in state.model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
            continue
        kept = state.kept.get(f"{name}.weight", {})
        transposed = getattr(module, "transposed", False)
        out_dim = 1 if transposed else 0
        after = len(kept[out_dim]) if out_dim in kept else weight.shape[out_dim]
        widths.append(LayerWidth(name, type(module).__name__, int(weight.shape[out_dim]), int(after)))
    return widths
