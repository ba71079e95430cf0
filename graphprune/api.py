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

from graphprune.allocation import BUDGET_TOLERANCE
from graphprune.codegen import materialize
from graphprune.errors import InputError
from graphprune.metrics import count_macs, count_params
from graphprune.plan import Plan, load_plan, with_overrides
from graphprune.plan.selectors import validate_selectors
from graphprune.report import LayerWidth, Report
from graphprune.scheduler import run_schedule, schedule
from graphprune.state import CompileState, Options
from graphprune.trace import unshare


@dataclass
class Result:
    module: fx.GraphModule
    report: Report
    state: CompileState


def _check_inputs(model: Any, example_inputs: Any) -> tuple[Any, ...]:
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if not isinstance(example_inputs, (tuple, list)) or not example_inputs:
        raise InputError(f"example_inputs must be a tensor or a non-empty tuple of tensors, "
                         f"got {type(example_inputs).__name__}")
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise InputError(f"example_inputs[{i}] must be a torch.Tensor, got {type(x).__name__}")
    return tuple(example_inputs)


def _options(plan: Plan) -> Options:
    """The flat options of the plan's first rule, kept in the state for passes written against them."""
    rule = plan.rules[0]
    spec = plan.allocate
    return Options(sparsity=rule.sparsity if rule.sparsity is not None else 0.0, score=rule.score,
                   round_to=spec.round_to, min_channels=spec.min_channels, exact=spec.exact)


def _check_plan_against(plan: Plan, model: nn.Module, inputs: tuple[Any, ...]) -> None:
    if plan.input_shape is not None and tuple(inputs[0].shape) != plan.input_shape:
        raise plan.error("model.input_shape", f"{list(plan.input_shape)} does not match example_inputs[0] "
                                              f"of shape {list(inputs[0].shape)}")
    validate_selectors(plan, dict(model.named_modules()))


def compile(model: nn.Module, example_inputs: Any, plan: Any = None, *, name: str | None = None,
            leaf_modules: tuple[type, ...] = (), data: Any = None, **overrides: Any) -> Result:
    """Prune ``model`` into a smaller fx.GraphModule computing the masked dense function.

    ``plan``: None (remove 50 % of every group by L2 magnitude), a recipe name, a TOML/YAML/JSON path,
    a dict or a ``Plan``; keyword overrides (``sparsity``, ``score``, ``round_to``, ``min_channels``,
    ``exact``, ``scope``, ``max_per_group``) apply on top. ``data``: (input, target) batches for
    data-driven passes."""
    inputs = _check_inputs(model, example_inputs)
    plan = with_overrides(load_plan(plan), overrides)
    _check_plan_against(plan, model, inputs)
    pipeline = schedule(plan, {"trace": {"leaf_modules": tuple(leaf_modules)}} if leaf_modules else None)
    state = CompileState(name or type(model).__name__, model, inputs, _options(plan), plan=plan,
                         data=data if data is not None else _plan_data(plan, inputs))
    state = run_schedule(state, pipeline)
    params_before = count_params(model)
    macs_before = state.macs.get("dense") or count_macs(model, inputs)
    module = materialize(state.gm)
    unshare(module, model)
    module.eval()
    report = _report(state, params_before, macs_before)
    return Result(module, report, state)


def _plan_data(plan: Plan, inputs: tuple[Any, ...]) -> Any:
    """The plan's built-in dataset, at the example input's spatial size unless the plan says otherwise."""
    if plan.data is None:
        return None
    from models_zoo.data import load_dataset

    size = inputs[0].shape[-1] if inputs[0].ndim == 4 else 16
    try:
        return load_dataset(**{"image_size": int(size), **plan.data})
    except ValueError as exc:
        raise plan.error("data.name", str(exc)) from None


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
        frozen=[{"reason": r, "nodes": n} for r, n in cg.frozen.items()],
        unknown_ops=[{"node": n, "op": op} for n, op in cg.unknown_ops],
        inexact=[{"reason": r, "nodes": n} for r, n in cg.inexact.items()],
        kept=state.kept,
        passes=[n for n, _ in state.history],
        seconds=_seconds(state.history),
        options={f.name: getattr(state.options, f.name) for f in fields(state.options)},
        layers=_layer_widths(state),
        plan=state.plan.to_dict() if state.plan is not None else {},
        schedule=list(state.trail),
        budget=_budget(state, macs_before, params_before),
        artifacts=dict(state.artifacts),
    )


def _seconds(history: tuple[tuple[str, float], ...]) -> dict[str, float]:
    total: dict[str, float] = {}
    for name, sec in history:
        total[name] = total.get(name, 0.0) + sec
    return {n: round(s, 4) for n, s in total.items()}


def _budget(state: CompileState, macs_before: int, params_before: int) -> dict[str, Any] | None:
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
