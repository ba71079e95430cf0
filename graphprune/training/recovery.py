"""Recovery training after pruning: fine-tune the pruned model, optionally distilling the dense one.

A run is ``round(epochs * steps_per_epoch)`` optimizer steps over a ``BatchStream`` (the batch at step
g depends only on the seed and g), with a fresh optimizer and schedule (``graphprune.training.optim``).
With ``distill`` the loss is ``graphprune.training.distill``'s blend of the task loss and the dense
model's softened logits; ``distill = "features"`` adds ``feature_weight`` x the squared error between
the two models' per-channel-norm outputs at the kept channels (``graphprune.training.features``). The
dense model runs in eval mode under ``no_grad`` and is never changed (its hooks last one forward).
Per-weight masks (mask-level pruning) stay applied: gradients are masked and the masks re-applied
after every step. Accuracy is measured before pruning (the dense model), after pruning (before the
first step) and after recovery, on the validation batches (or, without any, the training batches).

Checkpoints (``checkpoint_dir``) follow ADMM's rules (``graphprune.training.checkpoint``): written
atomically every ``checkpoint_every`` and at the end, with every RNG state; a fresh run refuses a
directory holding another run unless ``overwrite``; ``resume`` continues bit-for-bit and is refused,
naming the first difference, when the settings, the pruned model's tensors, the example inputs or the
data differ. Under torchrun every rank trains its share of each global batch; rank 0 writes.
"""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.admm.config import Period, steps_of
from graphprune.errors import InputError
from graphprune.latency import eval_mode
from graphprune.training import checkpoint as ckpt
from graphprune.training import distributed as D
from graphprune.training import optim
from graphprune.training.data import BatchStream
from graphprune.training.distill import distillation_loss
from graphprune.training.evaluate import evaluate
from graphprune.training.features import capture, feature_loss, feature_points
from graphprune.training.progress import MetricsLog, Progress
from graphprune.training.runs import open_run, save_run
from graphprune.training.spec import batch_accuracy, forward, recalibrate_batchnorm, to_device

TRAJECTORY = ("epochs", "optimizer", "lr", "momentum", "weight_decay", "schedule", "distill", "temperature",
              "distill_weight", "feature_weight", "recalibrate_bn", "seed")
DISTILL = {False: None, True: "logits", "logits": "logits", "features": "features"}


@dataclass(frozen=True)
class RecoveryConfig:
    epochs: float = 1.0
    optimizer: str = "sgd"
    lr: float | None = None  # None: the optimizer's default (graphprune.training.optim)
    momentum: float = 0.9  # SGD only
    weight_decay: float | None = None
    schedule: str = "cosine"
    distill: bool | str = False  # true | "logits": logits KD; "features": logits and per-channel-norm features
    temperature: float = 4.0
    distill_weight: float = 0.9  # share of the logits distillation term; the task loss gets the rest
    feature_weight: float = 1.0  # factor of the feature term (distill = "features" only)
    recalibrate_bn: int = 0  # batches to recompute BatchNorm statistics on before training (0: off)
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: Period = "1 epoch"
    resume: bool = False
    overwrite: bool = False
    log_every: int = 10
    progress: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, (int, float)) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise InputError(f"finetune.epochs: expected a number >= 0, got {self.epochs!r}")
        optim.check("finetune", self.optimizer, self.schedule, self.lr, self.weight_decay)
        if isinstance(self.distill, (list, dict)) or self.distill not in DISTILL:
            raise InputError(f"finetune.distill: expected true, false, 'logits' or 'features', got {self.distill!r}")
        if not isinstance(self.feature_weight, (int, float)) or self.feature_weight < 0:
            raise InputError(f"finetune.feature_weight: expected a number >= 0, got {self.feature_weight!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            raise InputError(f"finetune.temperature: expected a positive number, got {self.temperature!r}")
        if not isinstance(self.distill_weight, (int, float)) or not 0 <= self.distill_weight <= 1:
            raise InputError(f"finetune.distill_weight: expected a number in [0, 1], got {self.distill_weight!r}")
        steps_of(self.checkpoint_every, 1, "finetune.checkpoint_every")
        if self.resume and self.overwrite:
            raise InputError("finetune: resume and overwrite exclude each other")

    @property
    def distill_mode(self) -> str | None:
        """None (no distillation), "logits" or "features"."""
        return DISTILL[self.distill]

    def trajectory(self) -> dict[str, Any]:
        """What a resumed run must share with its checkpoint (everything that changes the numbers)."""
        d = asdict(self)
        d["lr"], d["weight_decay"] = optim.resolved(self.optimizer, self.lr, self.weight_decay)
        return {k: d[k] for k in TRAJECTORY}


@dataclass
class RecoveryResult:
    accuracy: dict[str, dict[str, float] | None]  # "dense", "pruned", "recovered" -> evaluate()'s record
    measured_on: str  # "validation" | "training"
    steps: int = 0
    steps_per_epoch: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    resumed: dict[str, Any] | None = None


def run_recovery(student: nn.Module, teacher: nn.Module, data: Any, val: Any, config: RecoveryConfig, *,
                 masks: dict[str, torch.Tensor] | None = None, loss_fn: Any = F.cross_entropy,
                 batch_size: int | None = None, example_inputs: Any = None,
                 kept: dict[str, dict[int, list[int]]] | None = None) -> RecoveryResult:
    """Train ``student`` in place (see the module docstring). ``teacher`` is read only. ``kept``: the
    dense indices each of the student's tensors kept (``CompileState.kept``), for feature distillation."""
    return _Recovery(student, teacher, data, val, config, masks or {}, loss_fn, batch_size, example_inputs,
                     kept or {}).run()


class _Recovery:
    def __init__(self, student: nn.Module, teacher: nn.Module, data: Any, val: Any, config: RecoveryConfig,
                 masks: dict[str, torch.Tensor], loss_fn: Any, batch_size: int | None, example_inputs: Any,
                 kept: dict[str, dict[int, list[int]]]) -> None:
        self.config, self.loss_fn, self.example_inputs = config, loss_fn, example_inputs
        self.d = D.setup(config.device)
        self.home, self.was_training = next(student.parameters()).device, student.training
        self.student = student.to(self.d.device)
        self.teacher = teacher
        if config.distill and next(teacher.parameters()).device != self.d.device:
            self.teacher = copy.deepcopy(teacher).to(self.d.device)  # the user's model stays where it is
        self.points = feature_points(student, teacher, kept) if config.distill_mode == "features" else []
        self.val, self.measured_on = (val, "validation") if val is not None else (data, "training")
        params = dict(student.named_parameters())
        self.masks = {n: m.to(self.d.device) for n, m in masks.items() if n in params}
        self.masked = {n: params[n] for n in self.masks}
        self.stream = BatchStream(data, seed=config.seed, batch_size=batch_size, rank=self.d.rank, world=self.d.world)
        self.data, self.batch_size = data, batch_size
        self.spe = self.stream.steps_per_epoch
        self.total = int(round(config.epochs * self.spe))
        self.ckpt_period = steps_of(config.checkpoint_every, self.spe, "finetune.checkpoint_every")
        out = Path(config.checkpoint_dir) if config.checkpoint_dir else None
        self.ckpt_path = out / ckpt.CHECKPOINT if out else None
        self.log = MetricsLog(out / ckpt.METRICS if out and self.d.main else None)
        self.step, self.done, self.resumed = 0, False, None
        self.window: list[tuple[float, float | None]] = []
        self.last: dict[str, Any] = {}
        lr, wd = optim.resolved(config.optimizer, config.lr, config.weight_decay)
        trainable = [p for p in student.parameters() if p.requires_grad]
        self.optimizer = optim.make_optimizer(config.optimizer, trainable, lr, wd, config.momentum)
        self.scheduler = optim.make_schedule(config.schedule, self.optimizer, self.total)

    # ------------------------------------------------------------------------------------ driver
    def run(self) -> RecoveryResult:
        accuracy = {"dense": self._evaluate(self.teacher), "pruned": self._evaluate(self.student)}
        if self._claim_directory():
            self._restore()
        else:
            self._seed()
            if self.config.recalibrate_bn:
                recalibrate_batchnorm(self.student, self.stream(0), self.config.recalibrate_bn, self.d.device)
        self.bar = Progress(self.total, self.step, self.config.progress and self.d.main, desc="finetune")
        if self.resumed:
            self.bar.note(self.resumed["message"])
        wrapped = D.wrap(self.student, self.d)
        self.student.train()
        try:
            batches = self.stream(self.step)
            while self.step < self.total:
                self._train_step(wrapped, next(batches))
            if not self.done:
                self.done = True
                self._record("done", eval=self._evaluate(self.student))
                self._save()
        finally:
            self.bar.close()
            self.student.train(self.was_training)
            self.student.to(self.home)
        accuracy["recovered"] = self.last.get("eval") if self.d.main else None  # the "done" record's
        return RecoveryResult(accuracy, self.measured_on, self.step, self.spe, self.log.records, self.resumed)

    def _seed(self) -> None:
        seed = self.config.seed + self.d.rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def _evaluate(self, model: nn.Module) -> dict[str, float] | None:
        if not self.d.main or self.val is None:
            return None
        device = next(model.parameters()).device
        return evaluate(model, self.val, self.loss_fn, device)

    # -------------------------------------------------------------------------------------- step
    def _loss(self, output: Any, inputs: Any, target: Any, features: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        if not c.distill_mode:
            return self.loss_fn(output, target)
        device = next(self.teacher.parameters()).device
        paths = [p.path for p in self.points]
        with eval_mode([self.teacher]), torch.no_grad(), capture(self.teacher, paths) as dense_features:
            teacher_out = forward(self.teacher, to_device(inputs, device))
        loss = distillation_loss(self.loss_fn, output, teacher_out, target, c.temperature, c.distill_weight)
        if self.points:
            loss = loss + c.feature_weight * feature_loss(self.points, features, dense_features)
        return loss

    def _train_step(self, wrapped: nn.Module, batch: Any) -> None:
        inputs, target = to_device(batch, self.d.device)
        self.optimizer.zero_grad(set_to_none=True)
        with capture(self.student, [p.path for p in self.points]) as features:
            output = forward(wrapped, inputs)
        loss = self._loss(output, inputs, target, features)
        loss.backward()
        with torch.no_grad():
            for n, p in self.masked.items():
                if p.grad is not None:
                    p.grad.mul_(self.masks[n])
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        with torch.no_grad():
            for n, p in self.masked.items():
                p.mul_(self.masks[n])
        self.step += 1
        value = float(loss.detach())
        self.window.append((value, batch_accuracy(output.detach() if isinstance(output, torch.Tensor) else None,
                                                  target)))
        epoch_end = self.step % self.spe == 0 and self.step < self.total
        if epoch_end or self.step % self.config.log_every == 0:
            self._record("epoch" if epoch_end else "step", eval=self._evaluate(self.student) if epoch_end else None)
        if self.step % self.ckpt_period == 0 and self.step < self.total:
            self._save()
        if self.bar.enabled:
            self.bar.show(loss=value, lr=self.optimizer.param_groups[0]["lr"],
                          val=self.last.get("eval", {}).get("acc"))
        self.bar.advance()

    def _record(self, event: str, **extra: Any) -> None:
        losses = [w[0] for w in self.window]
        accs = [w[1] for w in self.window if w[1] is not None]
        self.window = []
        record = {"event": event, "step": self.step, "epoch": round(self.step / self.spe, 4),
                  "loss": D.mean(sum(losses) / len(losses), self.d) if losses else None,
                  "acc": D.mean(sum(accs) / len(accs), self.d) if accs else None,
                  "lr": self.optimizer.param_groups[0]["lr"], **{k: v for k, v in extra.items() if v is not None}}
        if self.d.main:
            self.log.write(record)
        self.last = {**self.last, **{k: v for k, v in record.items() if v is not None}}

    # ------------------------------------------------------------------------------ checkpoints
    def _claim_directory(self) -> bool:
        if self.ckpt_path is None:
            return False
        c = self.config
        settings = {**{f"finetune.{k}": v for k, v in c.trajectory().items()}, "world size": self.d.world}
        resume, self.identity = open_run(
            self.ckpt_path, resume=c.resume, overwrite=c.overwrite, dist=self.d, settings=settings,
            module=self.student, constrained=list(self.masks), example_inputs=self.example_inputs,
            fingerprint=lambda: BatchStream(self.data, seed=c.seed, batch_size=self.batch_size,
                                            world=self.d.world).fingerprint())
        return resume

    def _save(self) -> None:
        if self.ckpt_path is None:
            return
        save_run(self.ckpt_path, self.d, {
            "identity": self.identity, "step": self.step, "model": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "data": self.stream.position(self.step), "window": self.window, "done": self.done,
            "last": self.last})

    def _restore(self) -> None:
        c = ckpt.load_checkpoint(self.ckpt_path)
        ckpt.check_resumable(self.ckpt_path, c.get("identity"), self.identity)
        self.student.load_state_dict(c["model"])
        self.optimizer.load_state_dict(c["optimizer"])
        if self.scheduler is not None and c["scheduler"] is not None:
            self.scheduler.load_state_dict(c["scheduler"])
        self.step, self.done, self.last = c["step"], c["done"], c["last"]
        self.window = [tuple(w) for w in c["window"]]
        ckpt.set_rng_state(c["rng"][self.d.rank])
        self.log.rewind(self.step)
        epoch, where = round(self.step / self.spe, 2), self.ckpt_path.parent
        self.resumed = {"step": self.step, "epoch": epoch, "checkpoint": str(self.ckpt_path), "message": (
            f"finetune: the run in {where} finished at step {self.step}; nothing left to train" if self.done else
            f"finetune: resuming from step {self.step} (epoch {epoch:g}) of {where}")}
