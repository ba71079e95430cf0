"""finetune: recovery training of the pruned model, optionally distilling the dense model's logits (and
its per-channel-norm features at the kept channels).

Preconditions: ``removed`` (it trains what removal left; the scheduler places it after removal,
purification and the unused-path fixed point, before fusing and emitting) and training data in
``state.data``. Effects: a copy of the state's GraphModule with its own tensors
(``graphprune.copy_on_write.trainable``) is trained and becomes the state's (``recovered``; the user's
model and the input state keep theirs); ``artifacts["finetune"]`` records the accuracy before pruning
(the user's dense model), after pruning and after recovery (on ``state.val_data``, else the training
data), the run's settings, steps and checkpoint directory. Its options are the plan's ``[finetune]``
table, declared once by ``graphprune.training.recovery.RecoveryConfig``; ``loss_fn`` takes the user's
task loss in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch.nn.functional as F

from graphprune.copy_on_write import trainable
from graphprune.errors import InputError
from graphprune.passes import Pass, Stage, options_of
from graphprune.state import CompileState
from graphprune.training.recovery import RecoveryConfig, run_recovery


@dataclass(frozen=True)
class Finetune(Pass, options_of(RecoveryConfig)):
    """The options are ``RecoveryConfig``'s fields with its defaults; the fields below are Python hooks."""

    name = "finetune"
    requires = frozenset({"removed"})
    provides = frozenset({"recovered"})
    invalidates = frozenset({"scores:*"})  # scores of the weights before training
    stage = Stage.RECOVER

    batch_size: int | None = None  # global batch when state.data is a Dataset
    loss_fn: Callable[..., Any] = field(default=F.cross_entropy, compare=False, repr=False)

    def config(self) -> RecoveryConfig:
        return RecoveryConfig(**{f.name: getattr(self, f.name) for f in fields(RecoveryConfig)})

    def run(self, state: CompileState) -> CompileState:
        if state.data is None:
            raise InputError("finetune: no training data; give data= in Python or --data on the command line")
        config = self.config()
        gm = trainable(state.gm)  # training writes in place: never into the user's or the input state's tensors
        result = run_recovery(gm, state.model, state.data, state.val_data, config, masks=state.masks,
                              loss_fn=self.loss_fn, batch_size=self.batch_size, example_inputs=state.example_inputs,
                              kept=state.kept)
        epochs = [{"epoch": r["epoch"], "loss": r.get("loss"), "lr": r["lr"], "val_acc": r["eval"]["acc"]}
                  for r in result.metrics if r["event"] in ("epoch", "done") and r.get("eval")]
        record = {"accuracy": {k: None if v is None else round(v["acc"], 6) for k, v in result.accuracy.items()},
                  "loss": {k: None if v is None else round(v["loss"], 6) for k, v in result.accuracy.items()},
                  "measured_on": result.measured_on,
                  "examples": next((v["examples"] for v in result.accuracy.values() if v), None),
                  "distill": config.distill, "epochs": config.epochs, "steps": result.steps,
                  "steps_per_epoch": result.steps_per_epoch, "settings": config.trajectory(),
                  "checkpoint_dir": config.checkpoint_dir,
                  "resumed_from": None if result.resumed is None else
                  {k: result.resumed[k] for k in ("step", "epoch", "checkpoint")},
                  "epochs_log": epochs}
        return state.with_(gm=gm, artifacts={**state.artifacts, "finetune": record})
