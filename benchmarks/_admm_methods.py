"""The StructADMM benchmark's methods, baselines and ablations (benchmarks/admm.py), all at one budget.

Each method takes the trained dense model and returns (pruned module, how, extra) after exactly
``Budget.budget`` epochs of training:

- ``admm``: progressive ADMM (``admm_epochs`` of W-steps shared by the steps, masked retraining), removal,
  purification + unused-path fixed point (P-RM), then ``prm_epochs`` of masked retraining (through
  ``retrain-purified`` when P-RM changed the model, else plain masked fine-tuning, so the budget is equal).
- ablations: ``admm-zfixed`` (Z never updated after each step's first projection), ``admm-rhofixed``
  (rho growth 1), ``admm-noprog`` (one step), ``admm-nopurify`` (no P-RM; its epochs go to retraining).
- ``magnitude``: one-shot L2 over groups (``graphprune.compile``), then fine-tuning.
- ``agp``: gradual magnitude pruning (Zhu & Gupta): the group projection's sparsity follows the cubic
  s_t = s (1 - (1 - t/T)^3) over the first half of the epochs (pruned once per epoch), masked training
  throughout, removal at the end.
- ``tp``: Torch-Pruning's ``GroupNormPruner``: sparse training for half the budget, prune, fine-tune.
"""

from __future__ import annotations

import copy
from typing import Any

from _admm_train import Budget, analysed, cosine, sparsity_for, train
from torch import nn

import graphprune
from graphprune.admm import build_constraint
from graphprune.copy_on_write import trainable
from graphprune.passes import run_pipeline
from passes import Admm, Finetune, Purify, RemoveChannels
from passes.retrain_purified import RetrainPurified
from passes.unused_paths import purify_to_fixed_point

Result = tuple[nn.Module, str, dict[str, Any]]
ABLATIONS = {"admm": {}, "admm-zfixed": {"update_z": False}, "admm-rhofixed": {"rho_growth": 1.0},
             "admm-noprog": {"progressive": False}, "admm-nopurify": {"purify": False}}


def method_admm(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int, ratio: float,
                variant: str = "admm") -> Result:
    change = ABLATIONS[variant]
    state = analysed(dense, inputs, s).with_(data=task.train)
    fractions = () if change.get("progressive") is False else b.progressive
    steps = [t for f in fractions if (t := sparsity_for(state, f * ratio)) < s]
    stages, prm = len(steps) + 1, 0 if change.get("purify") is False else b.prm_epochs
    admm = Admm(sparsity=s, structure=b.structure, progressive=tuple(steps), iterations=max(1, b.admm_epochs // stages),
                update_every="1 epoch", retrain_epochs=(b.budget - b.admm_epochs - prm) / stages, rho=b.rho,
                rho_growth=change.get("rho_growth", b.rho_growth), update_z=change.get("update_z", True), lr=b.lr,
                seed=seed, progress=False, scheduler=cosine(0), device="cpu")
    state = run_pipeline(state, [admm, RemoveChannels()])
    if not prm:
        before = state.artifacts["admm"]["compression"]["physical"]
        return purify_to_fixed_point(state).gm.eval(), "no purification", {"pre_prm_compression": before, "prm": None}
    state = purify_to_fixed_point(run_pipeline(state, [Purify(eta=b.purify_eta, sigma=b.purify_sigma)]))
    tune = {"lr": b.lr, "weight_decay": 5e-4, "progress": False, "device": "cpu", "seed": seed}
    state = run_pipeline(state, [RetrainPurified(epochs=prm, **tune)])
    record = state.artifacts["prm"]
    if not record["retrained_epochs"]:  # P-RM changed nothing: the same epochs as masked fine-tuning
        state = run_pipeline(state, [Finetune(epochs=prm, **tune)])
    return state.gm.eval(), "P-RM", {"pre_prm_compression": record["compression_before"]["physical"],
                                     "prm": {k: record[k] for k in ("before", "after", "changed")}}


def method_magnitude(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int, ratio: float) -> Result:
    module = graphprune.compile(dense, inputs, sparsity=s).module
    train(module, task.train, b.budget, b.lr, seed)
    return module, "compile+ft", {}


def agp_sparsity(final: float, epoch: int, epochs: int) -> float:
    """The cubic schedule: 0 before pruning starts, ``final`` from epoch ``epochs - 1`` on."""
    return final * (1 - (1 - min(epoch + 1, epochs) / epochs) ** 3)


def method_agp(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int, ratio: float) -> Result:
    state = analysed(dense, inputs, s)
    gm = trainable(state.gm)
    cg = state.channels
    constraint = build_constraint("group", gm, cg.groups, int(cg.labels.max()) + 1)
    params = dict(gm.named_parameters())
    masks: dict = {}
    keep: list = [None]
    prune_epochs = max(1, b.budget // 2)

    def prune(epoch: int) -> None:
        if epoch >= prune_epochs:
            return
        target = agp_sparsity(s, epoch, prune_epochs)
        proj = constraint.project({n: params[n].detach() for n in constraint.names}, target)
        masks.update({n: m & masks[n] if n in masks else m for n, m in proj.masks.items()})
        keep[0] = proj.keep if keep[0] is None else keep[0] & proj.keep
        for n, m in masks.items():
            params[n].data.mul_(m)

    train(gm, task.train, b.budget, b.lr, seed, masks=masks, on_epoch=prune)
    pruned = run_pipeline(state.with_(gm=gm, keep=keep[0], facts=state.facts | {"keep"}), [RemoveChannels()]).gm
    return pruned.eval(), "cubic+ft", {}


def tp_pruner(model: nn.Module, inputs: tuple, ratio: float, reg: float):
    import torch_pruning as tp

    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return tp.pruner.GroupNormPruner(model, inputs[0], importance=tp.importance.GroupMagnitudeImportance(p=2),
                                     reg=reg, pruning_ratio=ratio, ignored_layers=[head])


def tp_ratio_for(dense: nn.Module, inputs: tuple, ratio: float, conv_params) -> float:
    """Torch-Pruning's pruning_ratio reaching the same conv compression (its counting differs from ours)."""
    lo, hi = 0.0, 0.99
    for _ in range(12):
        mid = (lo + hi) / 2
        model = copy.deepcopy(dense)
        tp_pruner(model, inputs, mid, 0.0).step()
        lo, hi = (mid, hi) if conv_params(dense) / conv_params(model) < ratio else (lo, mid)
    return hi


def method_tp(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int, ratio: float) -> Result:
    model = copy.deepcopy(dense)
    pruner = tp_pruner(model, inputs, s, b.tp_reg)
    half = b.budget // 2
    train(model, task.train, half, b.lr, seed, after_backward=lambda m: pruner.regularize(m))
    pruner.step()
    train(model, task.train, b.budget - half, b.lr, seed + 1)
    return model, "sparse+prune+ft", {}


def _variant(name: str):
    return lambda *args: method_admm(*args, variant=name)


METHODS = {**{name: _variant(name) for name in ABLATIONS}, "magnitude": method_magnitude, "agp": method_agp,
           "tp": method_tp}
