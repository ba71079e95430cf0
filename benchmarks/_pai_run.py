"""One cell of the pruning-at-initialisation benchmark: prune a fresh model, train it, record the result.

Why separate from ``pai.py``: the protocol (which cells, which seeds, tuning, resuming) changes more
often than what one run does, and the test of a record's fields needs only this part. A PX run also
trains its two controls on the same mask scrambled (``graphprune.scoring.controls``): scoring once and
training three models keeps the controls paired with the PX run they control, at a third of the cost.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import torch
import torch.nn.functional as F

from graphprune.copy_on_write import unshare, writable
from graphprune.passes import Pass, run_pipeline
from graphprune.scoring import path_count
from graphprune.scoring.controls import shuffled_masks
from graphprune.scoring.masked import install_masks
from graphprune.state import CompileState, Options
from models_zoo.data import TASKS, Task, class_balanced
from models_zoo.small import plain_cnn, resnet8, small_cnn
from passes import (
    Allocate,
    AnalyzeChannels,
    ApplyMasks,
    Canonicalize,
    RemoveChannels,
    ScoreGrasp,
    ScorePx,
    ScoreRandom,
    ScoreSnip,
    ScoreSynflow,
    ScoreWeightMagnitude,
    Trace,
)

CONTROLS = {"px-shuffled": "layer", "px-filter-shuffled": "filter"}  # method -> shuffle scope of PX's mask
MODELS = {"plain_cnn": plain_cnn, "small_cnn": small_cnn, "resnet8": resnet8}
SIZE = 16


@dataclasses.dataclass(frozen=True)
class Config:
    steps: dict[str, int]
    rounds: int
    per_class: int = 10
    batch: int = 64
    init: str = "paper"  # the models' initialisation: "paper" (models_zoo paper_init) or "zoo"
    masked_data_copy: bool = True  # PX's data copy keeps pruned weights at 0 (the reference's behaviour)
    lrs: tuple[float, ...] = (0.01,)  # the learning rates every method is tuned over, on validation
    quick: bool = False

    def protocol(self) -> dict:
        """What a result depends on besides its cell: records of different protocols never mix. As JSON
        gives it back (lists, not tuples), so a stored record's protocol compares equal."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclasses.dataclass(frozen=True)
class Run:
    task: str
    model: str
    method: str  # a criterion; "px" also trains the CONTROLS
    kind: str  # dense | irregular | structured
    level: float  # weight density (irregular) or channel sparsity (structured)
    seed: int
    lr: float = 0.01
    phase: str = "test"  # "tune": a validation trial of the learning rate


_TASKS: dict[str, Task] = {}


def task(name: str) -> Task:
    """Built once per worker process (shapes rendering takes a few seconds)."""
    if name not in _TASKS:
        _TASKS[name] = TASKS[name](size=SIZE)
    return _TASKS[name]


def score_pass(method: str, rounds: int, density: float, cfg: Config) -> Pass:
    return {"random": lambda: ScoreRandom(seed=0), "magnitude": lambda: ScoreWeightMagnitude(p=1),
            "snip": lambda: ScoreSnip(), "grasp": lambda: ScoreGrasp(),
            "synflow": lambda: ScoreSynflow(rounds=rounds, density=density),
            "px": lambda: ScorePx(rounds=rounds, density=density, masked_data_copy=cfg.masked_data_copy)}[method]()


def _mask_info(model: torch.nn.Module, masks: dict, input_shape: tuple[int, ...]) -> dict:
    """Density, emptied layers and log10 of the input->output paths left (-inf: disconnected)."""
    kept = sum(int(m.sum()) for m in masks.values())
    paths = path_count(model, masks, input_shape)
    return {"density": round(kept / sum(m.numel() for m in masks.values()), 6),
            "collapsed_layers": sum(int(m.sum()) == 0 for m in masks.values()),
            "disconnected": paths == 0, "log10_paths": math.log10(paths) if paths > 0 else None}


def _with_masks(state: CompileState, masks: dict) -> torch.nn.Module:
    gm = writable(state.gm)
    install_masks(gm, masks)
    return gm


def prune(run: Run, cfg: Config) -> list[tuple[str, torch.nn.Module, dict]]:
    """(method, pruned or masked GraphModule, what the passes recorded) for the run and its controls."""
    model, inputs = MODELS[run.model](SIZE, seed=run.seed, init=cfg.init)
    if run.kind == "dense":
        return [("dense", model, {"score_s": 0.0, "density": 1.0, "collapsed_layers": 0, "disconnected": False})]
    t = task(run.task)
    x, y = class_balanced(t.train.x, t.train.y, cfg.per_class, seed=run.seed)
    sparsity = 1 - run.level if run.kind == "irregular" else run.level
    base = CompileState(run.model, model, inputs, Options(sparsity=sparsity, score=run.method))
    base = run_pipeline(base, [Trace(), Canonicalize(), AnalyzeChannels()]).with_(data=[(x, y)])
    if run.kind == "structured":
        scorer = score_pass(run.method, 1, 1.0, cfg)
        state = run_pipeline(base, [scorer, Allocate(), RemoveChannels()])
        # channel removal keeps every group non-empty: no layer is emptied
        info = {"density": None, "collapsed_layers": 0, "macs": state.macs["pruned"] / state.macs["dense"],
                "score_s": state.artifacts[scorer.name]["seconds"]}
        unshare(state.gm, model)
        return [(run.method, state.gm, info)]
    scorer = score_pass(run.method, cfg.rounds, run.level, cfg)
    state = run_pipeline(base, [scorer, ApplyMasks(criterion=run.method, density=run.level)])
    masks = {n: state.masks[n] for n in state.artifacts["apply-masks"]["layers"]}
    score_s = state.artifacts[scorer.name]["seconds"]
    shape = tuple(inputs[0].shape)
    out = [(run.method, state.gm, {**_mask_info(model, masks, shape), "score_s": score_s})]
    if run.method == "px":
        for name, within in CONTROLS.items():
            control = shuffled_masks(masks, seed=run.seed, within=within)
            out.append((name, _with_masks(base, control), {**_mask_info(model, control, shape), "score_s": score_s}))
    for _, gm, _ in out:
        unshare(gm, model)
    return out


def accuracy(model: torch.nn.Module, batches) -> float:
    """Accuracy in %."""
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    return 100.0 * correct / len(batches.y)


def train_eval(model: torch.nn.Module, t: Task, steps: int, lr: float, cfg: Config, seed: int) -> dict[str, float]:
    """Adam with a one-cycle schedule for ``steps`` batches; validation and test accuracy in %."""
    torch.manual_seed(seed)
    loader = dataclasses.replace(t.train, seed=seed, batch_size=cfg.batch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    step, epoch = 0, 0
    while step < steps:
        for x, y in loader.epoch(epoch):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            schedule.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    return {"val_acc": accuracy(model, t.val), "test_acc": accuracy(model, t.test)}


def execute(run: Run, cfg: Config, control_lrs: dict | None = None) -> list[dict]:
    """The records of one run (and of its controls, each trained at its own learning rate from
    ``control_lrs[(task, model, control)]``, else the run's): cell, what the passes recorded,
    accuracies in %, the learning rate used, the protocol."""
    torch.set_num_threads(1)
    records = []
    for method, model, info in prune(run, cfg):
        lr = (control_lrs or {}).get((run.task, run.model, method), run.lr)
        start = time.perf_counter()
        accuracies = train_eval(model, task(run.task), cfg.steps[run.task], lr, cfg, run.seed)
        records.append({**dataclasses.asdict(run), "method": method, "lr": lr, **info, **accuracies,
                        "train_s": round(time.perf_counter() - start, 2), "protocol": cfg.protocol()})
    return records
