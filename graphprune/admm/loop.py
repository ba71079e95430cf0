"""The StructADMM loop: W-step by the user's optimizer, Z-step projection, U-step, hard prune, masked
retraining, over progressive targets; resumable bit-for-bit and data-parallel under torchrun.

A run is a fixed list of phases (per progressive target: ``admm`` then ``retrain``) and every event is
tied to a phase and a step inside it, so a checkpoint is (phase, step) plus tensors:

- ``admm`` start: fresh optimizer; Z <- Proj(W), U <- 0, rho <- rho0 (reset per progressive step).
  Each step minimises f(W) + sum rho/2 ||W - Z + U||^2: the penalty's gradient rho (W - Z + U) is added
  to the data gradient after backward (after DDP's all-reduce; it is identical on every rank).
  Every ``update_every`` steps: Z <- Proj(W + U), U <- U + W - Z, rho <- min(rho * growth, rho_max)
  (``update_z = false``, an ablation: Z keeps its first projection).
- ``retrain`` start (hard prune): the primal residual ||W - Z|| (and relative to ||W||) is logged with the
  ``prune`` record; masks <- Proj(W) (and the previous step's masks), W <- W * masks,
  BatchNorm running statistics recomputed on ``recalibrate_bn`` fixed batches, fresh optimizer. Each
  step multiplies gradients by the masks and re-applies them to the weights after the optimizer step
  (weight decay or an optimizer's own state would otherwise revive them).

Z and U are computed on every rank from W, which is broadcast from rank 0 before every update (DDP
keeps it in sync; the broadcast makes it bitwise so). Only rank 0 writes.

A fresh run never writes into a ``checkpoint_dir`` holding another run (refused unless ``overwrite``); a
resume is refused, naming the first difference, unless its plan settings, model, example inputs and data
match the checkpoint's (``graphprune.training.identity``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from graphprune.admm.config import AdmmConfig, steps_of
from graphprune.admm.constraints import Constraint
from graphprune.errors import InputError
from graphprune.ops.registry import Trait, has_trait
from graphprune.training import checkpoint as ckpt
from graphprune.training import distributed as D
from graphprune.training.data import BatchStream
from graphprune.training.progress import MetricsLog, Progress
from graphprune.training.runs import open_run, save_run
from graphprune.training.spec import StepInfo, TrainSpec, batch_accuracy, forward, recalibrate_batchnorm, to_device

Tensor = torch.Tensor


@dataclass(frozen=True)
class Phase:
    stage: int
    kind: str  # "admm" | "retrain"
    steps: int
    target: float


@dataclass
class AdmmResult:
    keep: np.ndarray | None  # bool per channel label (removable structures), from the last hard prune
    masks: dict[str, Tensor]  # fqn -> bool (True = kept), from the last hard prune
    metrics: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    final: dict[str, float] = field(default_factory=dict)  # last evaluation
    resumed: dict[str, Any] | None = None  # step, epoch and checkpoint a resumed run continued from


def schedule(config: AdmmConfig, steps_per_epoch: int) -> list[Phase]:
    period = steps_of(config.update_every, steps_per_epoch, "admm.update_every")
    retrain = int(round(config.retrain_epochs * steps_per_epoch))
    return [Phase(i, kind, n, t) for i, t in enumerate(config.targets())
            for kind, n in (("admm", config.iterations * period), ("retrain", retrain))]


def run_admm(module: nn.Module, constraint: Constraint, spec: TrainSpec, config: AdmmConfig,
             dist: D.Dist | None = None, example_inputs: Any = None) -> AdmmResult:
    """Train ``module`` in place under ``constraint`` (see the module docstring); returns the final keep
    decision and masks. Under torchrun, call it on every rank with the same arguments. ``example_inputs``
    (those the module was traced with) are recorded in checkpoints: a resume with others is refused."""
    return _Run(module, constraint, spec, config, dist or D.setup(config.device), example_inputs).run()


class _Run:
    def __init__(self, module: nn.Module, constraint: Constraint, spec: TrainSpec, config: AdmmConfig,
                 d: D.Dist, example_inputs: Any = None) -> None:
        self.module, self.constraint, self.spec, self.config, self.d = module, constraint, spec, config, d
        self.example_inputs = example_inputs
        self.home = next(module.parameters()).device
        self.was_training = module.training
        module.to(d.device)
        params = dict(module.named_parameters())
        missing = [n for n in constraint.names if n not in params]
        if missing or not constraint.names:
            raise InputError(f"admm: constrained parameters not found in the model: {missing or 'none given'}")
        self.params = {n: params[n] for n in constraint.names}
        self.stream = BatchStream(spec.data, seed=config.seed, batch_size=spec.batch_size, rank=d.rank, world=d.world)
        self.spe = self.stream.steps_per_epoch
        self.phases = schedule(config, self.spe)
        self.period = steps_of(config.update_every, self.spe, "admm.update_every")
        self.ckpt_period = steps_of(config.checkpoint_every, self.spe, "admm.checkpoint_every")
        out = Path(config.checkpoint_dir) if config.checkpoint_dir else None
        self.ckpt_path = out / ckpt.CHECKPOINT if out else None
        self.log = MetricsLog(out / ckpt.METRICS if out and d.main else None)
        self.resumed: dict[str, Any] | None = None
        self.z: dict[str, Tensor] = {}
        self.u: dict[str, Tensor] = {}
        self.masks: dict[str, Tensor] = {}
        self.keep: np.ndarray | None = None
        self.rho = config.rho
        self.step, self.pi, self.local = 0, 0, 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.window: list[tuple[float, float | None]] = []
        self.last: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------ driver
    def run(self) -> AdmmResult:
        self.done = False
        if self._claim_directory():
            self._restore()
        else:
            torch.manual_seed(self.config.seed + self.d.rank)
            np.random.seed((self.config.seed + self.d.rank) % 2**32)
            random.seed(self.config.seed + self.d.rank)
        total = sum(p.steps for p in self.phases)
        self.bar = Progress(total, self.step, self.config.progress and self.d.main)
        if self.resumed:
            self.bar.note(self.resumed["message"])
        self.wrapped = D.wrap(self.module, self.d)
        self.module.train()
        batches = self.stream(self.step)
        try:
            while not self.done:
                phase = self.phases[self.pi]
                if self.local == 0:
                    self._start(phase)
                while self.local < phase.steps:
                    self._train_step(phase, next(batches))
                if self.pi == len(self.phases) - 1:
                    self._finish()
                else:
                    self.pi, self.local = self.pi + 1, 0
        finally:
            self.bar.close()
            self.module.train(self.was_training)
            self.module.to(self.home)
        return AdmmResult(self.keep, {n: m.to(self.home) for n, m in self.masks.items()}, self.log.records,
                          self.step, self.last.get("eval", {}), self.resumed)

    def _start(self, phase: Phase) -> None:
        self._new_optimizer(phase.steps)
        w = {n: p.detach() for n, p in self.params.items()}
        if phase.kind == "admm":
            self.rho = self.config.rho
            masks = self._masks(self.constraint.project(w, phase.target).masks)
            self.z = {n: w[n] * masks[n] for n in w}
            self.u = {n: torch.zeros_like(w[n]) for n in w}
            self._record("start", phase, primal=self._primal())
            return
        before = self._evaluate()
        primal, norm = self._primal(), self._norm()  # how far W still is from Z when it is cut to the set
        proj = self.constraint.project(w, phase.target)
        self.masks = self._masks(proj.masks)
        if proj.keep is not None:
            self.keep = proj.keep if self.keep is None else self.keep & proj.keep
        with torch.no_grad():
            for n, p in self.params.items():
                p.mul_(self.masks[n])
        if recalibrate_batchnorm(self.module, self.stream(0), self.config.recalibrate_bn, self.d.device):
            D.broadcast_tensors([b for m in self.module.modules() if has_trait(m, Trait.RUNNING_STATS)
                                 for b in m.buffers()], self.d)
        self._record("prune", phase, eval_before=before, eval=self._evaluate(), primal=primal,
                     primal_rel=primal / norm if norm else 0.0, rho_end=self.rho,
                     density=sum(int(m.sum()) for m in self.masks.values()) /
                     max(1, sum(m.numel() for m in self.masks.values())))

    def _new_optimizer(self, steps: int) -> None:
        params = [p for p in self.module.parameters() if p.requires_grad]
        c = self.config
        self.optimizer = (self.spec.optimizer(params) if self.spec.optimizer else
                          torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay))
        self.scheduler = self.spec.scheduler(self.optimizer, steps) if self.spec.scheduler else None

    def _masks(self, new: dict[str, Tensor]) -> dict[str, Tensor]:
        return {n: new[n] & self.masks[n] if n in self.masks else new[n] for n in self.params}

    # -------------------------------------------------------------------------------------- step
    def _train_step(self, phase: Phase, batch: Any) -> None:
        inputs, target = to_device(batch, self.d.device)
        self.optimizer.zero_grad(set_to_none=True)
        output = forward(self.wrapped, inputs)
        loss = self.spec.loss_fn(output, target)
        loss.backward()
        with torch.no_grad():
            for n, p in self.params.items():
                if phase.kind == "admm":
                    pull = (p - self.z[n] + self.u[n]) * self.rho
                    p.grad = pull if p.grad is None else p.grad.add_(pull)
                if n in self.masks and p.grad is not None:
                    p.grad.mul_(self.masks[n])
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        with torch.no_grad():
            for n, m in self.masks.items():
                self.params[n].mul_(m)
        self.step, self.local = self.step + 1, self.local + 1
        loss_value = float(loss.detach())
        self.window.append((loss_value, batch_accuracy(output.detach(), target)))
        updated = phase.kind == "admm" and self.local % self.period == 0
        if updated:
            self._update_zu(phase)
        epoch_end = self.step % self.spe == 0 and phase.kind == "retrain"
        if updated or epoch_end or self.local == phase.steps or self.step % self.config.log_every == 0:
            self._record("update" if updated else "epoch" if epoch_end else "step", phase,
                         eval=self._evaluate() if updated or epoch_end else None)
        if self.step % self.ckpt_period == 0:
            self._save()
        if self.bar.enabled:  # every step: this rank's loss, the current rho and ||W - Z||
            self.bar.show(stage=phase.stage, phase=phase.kind, loss=loss_value, acc=self.window[-1][1] if self.window
                          else self.last.get("acc"), rho=self.rho if phase.kind == "admm" else None,
                          **{"|W-Z|": self._primal() if phase.kind == "admm" else None},
                          val=self.last.get("eval", {}).get("acc"))
        self.bar.advance()
        if self.spec.on_step:
            self.spec.on_step(StepInfo(self.step, phase.stage, phase.kind, loss_value))

    def _update_zu(self, phase: Phase) -> None:
        D.broadcast_tensors(list(self.params.values()), self.d)  # W is in sync under DDP; make it bitwise so
        if self.config.update_z:
            x = {n: p.detach() + self.u[n] for n, p in self.params.items()}
            masks = self._masks(self.constraint.project(x, phase.target).masks)
            self.z = {n: x[n] * masks[n] for n in self.params}
        for n, p in self.params.items():
            self.u[n] = self.u[n] + p.detach() - self.z[n]
        rho = min(self.rho * self.config.rho_growth, self.config.rho_max)
        for n in self.u:  # U is the dual scaled by 1/rho: keep the unscaled dual rho * U when rho grows
            self.u[n] = self.u[n] * (self.rho / rho)
        self.rho = rho

    def _primal(self) -> float:
        if not self.z:
            return 0.0
        return float(sum(float((p.detach() - self.z[n]).double().pow(2).sum()) for n, p in self.params.items())) ** 0.5

    def _norm(self) -> float:
        return float(sum(float(p.detach().double().pow(2).sum()) for p in self.params.values())) ** 0.5

    def _evaluate(self) -> dict[str, float] | None:
        if self.spec.eval_fn is None or not self.d.main:
            return None
        self.module.eval()
        try:
            return {k: float(v) for k, v in self.spec.eval_fn(self.module).items()}
        finally:
            self.module.train()

    def _record(self, event: str, phase: Phase, **extra: Any) -> None:
        losses = [w[0] for w in self.window]
        accs = [w[1] for w in self.window if w[1] is not None]
        loss = D.mean(sum(losses) / len(losses), self.d) if losses else None
        acc = D.mean(sum(accs) / len(accs), self.d) if accs else None
        self.window = []
        primal = extra.pop("primal", None)
        if phase.kind == "admm" and primal is None:
            primal = self._primal()
        record = {"event": event, "step": self.step, "epoch": round(self.step / self.spe, 4), "stage": phase.stage,
                  "phase": phase.kind, "target": phase.target, "loss": loss, "acc": acc,
                  "rho": self.rho if phase.kind == "admm" else None, "primal": primal,
                  **{k: v for k, v in extra.items() if v is not None}}
        if self.d.main:
            self.log.write(record)
        self.last = {**self.last, **{k: v for k, v in record.items() if v is not None}}
        self.bar.show(stage=phase.stage, phase=phase.kind, loss=self.last.get("loss"), acc=self.last.get("acc"),
                      rho=record["rho"], **{"|W-Z|": primal}, val=self.last.get("eval", {}).get("acc"))

    def _finish(self) -> None:
        phase = self.phases[-1]
        self._record("done", phase, eval=self._evaluate())
        self.done = True
        self._save()

    # ------------------------------------------------------------------------------ checkpoints
    def _claim_directory(self) -> bool:
        """Refuse (or, with overwrite, clear) another run's checkpoint_dir; True when resuming. Records the
        run's identity first (before any RNG is seeded; the data fingerprint leaves the RNGs as they were)."""
        if self.ckpt_path is None:
            return False
        c = self.config
        settings = {**{f"admm.{k}": v for k, v in c.trajectory().items()}, "admm.update_every": self.period,
                    "world size": self.d.world}
        resume, self.identity = open_run(
            self.ckpt_path, resume=c.resume, overwrite=c.overwrite, dist=self.d, settings=settings,
            module=self.module, constrained=list(self.params), example_inputs=self.example_inputs,
            fingerprint=lambda: BatchStream(self.spec.data, seed=c.seed, batch_size=self.spec.batch_size,
                                            world=self.d.world).fingerprint())
        return resume

    def _save(self) -> None:
        if self.ckpt_path is None:
            return
        save_run(self.ckpt_path, self.d, {
            "identity": self.identity, "step": self.step, "phase_index": self.pi, "local": self.local,
            "rho": self.rho, "model": self.module.state_dict(), "z": self.z, "u": self.u, "masks": self.masks,
            "keep": None if self.keep is None else torch.from_numpy(self.keep),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "data": self.stream.position(self.step), "window": self.window, "done": self.done,
            "last": self.last})

    def _restore(self) -> None:
        c = ckpt.load_checkpoint(self.ckpt_path)
        ckpt.check_resumable(self.ckpt_path, c.get("identity"), self.identity)
        dev = self.d.device
        self.module.load_state_dict(c["model"])
        self.z = {n: t.to(dev) for n, t in c["z"].items()}
        self.u = {n: t.to(dev) for n, t in c["u"].items()}
        self.masks = {n: t.to(dev) for n, t in c["masks"].items()}
        self.keep = None if c["keep"] is None else c["keep"].numpy().copy()
        self.rho, self.step, self.pi, self.local = c["rho"], c["step"], c["phase_index"], c["local"]
        if self.local == self.phases[self.pi].steps and self.pi < len(self.phases) - 1:
            self.pi, self.local = self.pi + 1, 0  # the checkpoint closed a phase: start the next one afresh
        elif c["optimizer"] is not None:
            self._new_optimizer(self.phases[self.pi].steps)
            self.optimizer.load_state_dict(c["optimizer"])
            if self.scheduler is not None and c["scheduler"] is not None:
                self.scheduler.load_state_dict(c["scheduler"])
        self.window, self.done, self.last = [tuple(w) for w in c["window"]], c["done"], c["last"]
        ckpt.set_rng_state(c["rng"][self.d.rank])
        self.log.rewind(self.step)
        epoch = round(self.step / self.spe, 2)
        where = self.ckpt_path.parent
        self.resumed = {"step": self.step, "epoch": epoch, "checkpoint": str(self.ckpt_path), "message": (
            f"admm: the run in {where} finished at step {self.step}; nothing left to train" if self.done else
            f"admm: resuming from step {self.step} (epoch {epoch:g}) of {where}")}
