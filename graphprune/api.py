"""``graphprune.compile``: the published entry point.

compile(model, example_inputs, plan=None, **overrides) -> Result. The default plan traces, analyses
channel groups, scores them by L2 magnitude, removes ``sparsity`` of every group's channels and
verifies the result. The user's model is never mutated."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomllib
import torch
import torch.fx as fx
from torch import nn

from graphprune.errors import InputError, PlanError
from graphprune.metrics import count_macs, count_params
from graphprune.passes import run_pipeline
from graphprune.report import LayerWidth, Report
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


def _load_plan(plan: Any) -> dict[str, Any]:
    if plan is None:
        return {}
    if isinstance(plan, (str, Path)):
        path = Path(plan)
        if not path.exists():
            raise PlanError(f"plan file {path} does not exist")
        text = path.read_text()
        try:
            return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: {exc}") from exc
    if isinstance(plan, dict):
        return dict(plan)
    raise PlanError(f"plan must be a dict or a path to a .toml/.json file, got {type(plan).__name__}")


def _options(plan: dict[str, Any], overrides: dict[str, Any]) -> Options:
    known = {f.name for f in fields(Options)}
    merged = {**plan, **{k: v for k, v in overrides.items() if v is not None}}
    for key in merged:
        if key not in known:
            raise PlanError(f"{key}: unknown option (expected one of {sorted(known)})")
    opts = Options(**merged)
    if not isinstance(opts.sparsity, (int, float)) or not (0 <= opts.sparsity < 1) or math.isnan(opts.sparsity):
        raise InputError(f"sparsity must be a number in [0, 1), got {opts.sparsity!r}")
    if not isinstance(opts.round_to, int) or opts.round_to < 1:
        raise InputError(f"round_to must be a positive integer, got {opts.round_to!r}")
    if opts.score not in ("l1", "l2"):
        raise InputError(f"score must be 'l1' or 'l2', got {opts.score!r}")
    return opts


def default_pipeline(options: Options, leaf_modules: tuple[type, ...] = ()) -> list:
    from passes import Allocate, AnalyzeChannels, Canonicalize, RemoveChannels, ScoreMagnitude, Trace

    return [Trace(leaf_modules), Canonicalize(), AnalyzeChannels(), ScoreMagnitude(p=int(options.score[1])), Allocate(),
            RemoveChannels()]


def compile(model: nn.Module, example_inputs: Any, plan: Any = None, *, name: str | None = None,
            leaf_modules: tuple[type, ...] = (), **overrides: Any) -> Result:
    """Prune ``model`` into a smaller fx.GraphModule computing the masked dense function."""
    inputs = _check_inputs(model, example_inputs)
    options = _options(_load_plan(plan), overrides)
    state = CompileState(name or type(model).__name__, model, inputs, options)
    state = run_pipeline(state, default_pipeline(options, tuple(leaf_modules)))
    params_before = count_params(model)
    macs_before = state.macs.get("dense") or count_macs(model, inputs)
    module = state.gm
    unshare(module, model)
    module.eval()
    report = _report(state, params_before, macs_before)
    return Result(module, report, state)


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
        seconds={n: round(s, 4) for n, s in state.history},
        options={f.name: getattr(state.options, f.name) for f in fields(state.options)},
        layers=_layer_widths(state),
    )


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
