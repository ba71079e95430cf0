"""admm: StructADMM constrained training over pruning groups, then hard prune and masked retraining.

Preconditions: ``groups`` (the channel analysis) and training data in ``state.data`` (any source
``graphprune.training.data.BatchStream`` accepts). Effects: a copy of the state's GraphModule with
its own tensors (``graphprune.copy_on_write.trainable``) is trained and becomes the state's
(``weights-trained``; the user's model and the input state keep theirs). ``state.keep`` drops the
channels ADMM zeroed: for ``group`` the final projection's decision, for the per-layer sets (``filter``,
``channel``, ``shape``) every channel zero in all its members that liveness confirms dead
(``graphprune.admm.removal``); what only the unused-path fixed point can see is left to it.
``state.masks`` holds the per-weight masks. ``artifacts["admm"]`` records the run, the primal residual at
every hard prune and the conv census (entries present / non-zero) of what removing ``keep`` leaves.
Its options are the plan's ``[admm]`` table, declared once by ``AdmmConfig``;
the hook fields take the user's loss, optimizer factory, scheduler factory and evaluation (defaults:
cross-entropy, SGD).
Under torchrun every rank runs the pass; only rank 0 writes checkpoints and metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch.nn.functional as F

from graphprune.admm.config import AdmmConfig
from graphprune.admm.removal import zeroed_keep
from graphprune.conv_census import census_after_keep, compression, conv_params
from graphprune.copy_on_write import trainable
from graphprune.errors import InputError
from graphprune.liveness import dead_labels
from graphprune.passes import Pass, Stage, options_of
from graphprune.state import CompileState


@dataclass(frozen=True)
class Admm(Pass, options_of(AdmmConfig, sparsity=(float | None, None))):  # None: from the plan's rules
    """The options are ``AdmmConfig``'s fields with its defaults, except ``sparsity`` (the plan's rules
    give a target per group unless it is set); the fields below are Python hooks."""

    name = "admm"
    requires = frozenset({"groups"})
    provides = frozenset({"weights-trained", "keep", "masks"})
    stage = Stage.TRAIN
    leaves_dead_channels = True  # ADMM zeroes weights, masks cut whole filters

    batch_size: int | None = None  # global batch when state.data is a Dataset
    loss_fn: Callable[..., Any] = field(default=F.cross_entropy, compare=False, repr=False)
    optimizer: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    scheduler: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    eval_fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    on_step: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def config(self, state: CompileState) -> AdmmConfig:
        values = {f.name: getattr(self, f.name) for f in fields(AdmmConfig)}
        if values["sparsity"] is None:
            rules = _rule_sparsities(state)
            values["sparsity"] = max(rules.values(), default=0.0) if rules else state.options.sparsity
        return AdmmConfig(**values)

    def group_scale(self, state: CompileState, final: float) -> dict[int, float] | None:
        """Per group: its plan rule's sparsity relative to the run's target (None: one target for all)."""
        if self.sparsity is not None or not final:
            return None
        rules = _rule_sparsities(state)
        return None if rules is None else {g: s / final for g, s in rules.items()}

    def run(self, state: CompileState) -> CompileState:
        from graphprune.admm.constraints import build_constraint
        from graphprune.admm.loop import run_admm
        from graphprune.training import TrainSpec

        if state.data is None:
            raise InputError("admm: no training data; give data= in Python or --data on the command line")
        config = self.config(state)
        gm = trainable(state.gm)  # training writes in place: never into the user's or the input state's tensors
        cg, opts = state.channels, state.options
        num_labels = int(cg.labels.max()) + 1 if len(cg.labels) else 0
        constraint = build_constraint(config.structure, gm, cg.groups, num_labels, round_to=opts.round_to,
                                      min_channels=opts.min_channels, exact=opts.exact,
                                      scale=self.group_scale(state, config.sparsity))
        spec = TrainSpec(state.data, self.loss_fn, self.optimizer, self.scheduler, self.eval_fn, self.on_step,
                         self.batch_size)
        dense = conv_params(state.gm)
        result = run_admm(gm, constraint, spec, config, example_inputs=state.example_inputs)
        projected = result.keep if result.keep is not None else np.ones(num_labels, dtype=bool)
        trained = state.with_(gm=gm, masks={**state.masks, **result.masks})
        keep = projected & zeroed_keep(gm, cg.groups, num_labels, dead_labels(trained), opts.exact)
        census = census_after_keep(gm, cg.groups, keep)
        record = {"targets": list(config.targets()), "structure": config.structure, "steps": result.steps,
                  "kept_channels": int(keep.sum()), "channels": int(keep.size),
                  "removed_zero_channels": int((projected & ~keep).sum()), "final": result.final,
                  "conv_params_dense": dense, "census": census, "compression": compression(dense, census),
                  "hard_prune": [{k: r.get(k) for k in ("stage", "target", "primal", "primal_rel", "rho_end")}
                                 for r in result.metrics if r["event"] == "prune"],
                  "checkpoint_dir": config.checkpoint_dir,
                  "resumed_from": None if result.resumed is None else
                  {k: result.resumed[k] for k in ("step", "epoch", "checkpoint")},
                  "updates": [{k: r.get(k) for k in ("step", "stage", "rho", "primal", "eval")}
                              for r in result.metrics if r["event"] == "update"]}
        return trained.with_(keep=keep, artifacts={**state.artifacts, "admm": record})


def _rule_sparsities(state: CompileState) -> dict[int, float] | None:
    """Group index -> the sparsity of the plan rule governing it (groups no channel rule selects are
    absent); None without a plan. ADMM needs a target per group, so budget rules are refused."""
    plan = getattr(state, "plan", None)
    if plan is None or not getattr(plan, "rules", None):
        return None
    from graphprune.plan.selectors import assign_rules

    out: dict[int, float] = {}
    for group, rule in zip(state.channels.groups, assign_rules(plan, state.channels.groups,
                                                               state.selectable_modules())):
        if rule is None or not rule.removes_channels or (rule.structure == "heads" and not group.heads):
            continue  # a heads rule removes heads only: its other groups stay whole, as allocate keeps them
        if rule.sparsity is None:
            raise InputError(f"{rule.path}: admm needs a sparsity target for the groups it selects "
                             f"(budget rules are met by allocate, not by ADMM)")
        out[group.index] = float(rule.sparsity)
    return out
