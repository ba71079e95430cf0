"""StructADMM over pruning groups versus one-shot magnitude pruning and Torch-Pruning's group-norm sparse
training, at equal total epoch budget after the same dense model.

For each task, model, seed: the dense model is trained once (``dense_epochs``, cached under ``--work``).
For each conv compression ratio r (dense conv parameters / pruned conv parameters) one uniform channel
sparsity s is found (bisection on the exact count the group projection keeps) and every method gets
``budget`` epochs:

(a) admm: the ``admm`` pass (group projection, ``admm_epochs`` of W-steps with a Z/U update per epoch,
    hard prune, masked retraining for the rest), then remove-channels, then unused-path removal to a
    fixed point when ``passes/unused_paths.py`` is available ("+P" in the table), else plain removal.
(b) magnitude: ``graphprune.compile(dense, sparsity=s)`` (one-shot L2 over groups), then fine-tuning.
(c) tp: Torch-Pruning 1.6 ``GroupNormPruner`` (group L2 importance, pruning_ratio s, classifier ignored):
    sparse training with its group regulariser for half the budget, prune, fine-tune the other half.

Reported: test accuracy mean +- std over seeds, the conv compression actually reached, parameters and
MACs of the pruned model (graphprune.metrics) and measured CPU latency (graphprune.latency, 1 thread,
batch 32, medians timed round-robin with the dense model, whose ratio is the speedup). Torch-Pruning
counts channels differently, so its pruning_ratio is found by its own bisection to reach the same
compression. Results are appended to ``--work/results.jsonl`` as they finish, and a rerun skips what
is already there, so an interrupted run continues.

Run:  python benchmarks/admm.py --quick --results /tmp/structadmm_quick.jsonl   # ~1 min smoke run
      python benchmarks/admm.py --tasks mnist5k --results docs/results/structadmm.jsonl   # records for the docs
      python benchmarks/admm.py              # ~20 min on 2 shared cores: resnet20, digits, 2/5/10/20x, 3 seeds
      python benchmarks/admm.py --models resnet56 vgg11_bn --ratios 10 20 --seeds 0   # as in docs/admm.md
      python benchmarks/admm.py --tasks shapes --ratios 10 20
      python benchmarks/admm.py --validation --ratios 20 --rho 0.01 --rho-growth 1.5   # tune off the test set
      python benchmarks/admm.py --report --tasks digits shapes --models resnet20 resnet56 vgg11_bn
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import graphprune  # noqa: E402
import models_zoo  # noqa: E402
from graphprune.admm import projections  # noqa: E402
from graphprune.admm.constraints import weight_names  # noqa: E402
from graphprune.latency import time_variants  # noqa: E402
from graphprune.metrics import count_macs, count_params  # noqa: E402
from graphprune.passes import run_pipeline  # noqa: E402
from graphprune.state import CompileState, Options  # noqa: E402
from models_zoo.data import TASKS  # noqa: E402
from passes import Admm, AnalyzeChannels, Canonicalize, RemoveChannels, Trace  # noqa: E402

INPUT_SIZE = {"resnet20": 8, "resnet56": 8, "vgg11_bn": 16}  # digits are 8x8; VGG needs a multiple of 16
MIN_TASK_SIZE = {"shapes": 16, "mnist5k": 16}  # shapes aliases below 16 px; MNIST is 28x28


def input_size(task_name: str, model: str) -> int:
    return max(INPUT_SIZE[model], MIN_TASK_SIZE.get(task_name.split("-")[0], 0))
METHODS = ("admm", "magnitude", "tp")


@dataclass(frozen=True)
class Budget:
    dense_epochs: int = 30
    budget: int = 20  # epochs every method gets after the dense model
    admm_epochs: int = 8  # (a): W-step epochs (one Z/U update each); the rest is masked retraining
    rho: float = 0.03  # chosen on a validation split of the training set (docs/admm.md)
    rho_growth: float = 1.3
    progressive: tuple[float, ...] = ()  # (a): intermediate conv compressions, e.g. (10,) on the way to 20x
    lr_dense: float = 0.05
    lr: float = 0.01  # ADMM W-steps, retraining and fine-tuning
    tp_reg: float = 5e-4
    batch_size: int = 64


# ------------------------------------------------------------------------------------------ training


def cosine(steps: int):
    return lambda opt, n=None: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(n or steps, 1))


def train(model: nn.Module, batches, epochs: int, lr: float, seed: int, after_backward=None) -> None:
    """SGD(momentum 0.9, wd 5e-4), cosine schedule, ``batches.epoch(e)`` order."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * len(batches)))
    model.train()
    for epoch in range(epochs):
        for x, y in batches.epoch(1000 * seed + epoch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if after_backward is not None:
                after_backward(model)
            opt.step()
            sched.step()
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, batches) -> float:
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


def conv_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd))


# ----------------------------------------------------------------------------- matching compression


def analysed(model: nn.Module, inputs: tuple, sparsity: float = 0.5) -> CompileState:
    state = CompileState(type(model).__name__, model, inputs, Options(sparsity=sparsity))
    return run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels()])


def sparsity_for(state: CompileState, ratio: float) -> float:
    """Uniform channel sparsity whose group projection keeps ~1/ratio of the conv weights."""
    params = dict(state.gm.named_parameters())
    convs = {n: params[n].detach() for n in weight_names(state.gm) if params[n].ndim > 2}
    dense = sum(t.numel() for t in convs.values())
    labels = int(state.channels.labels.max()) + 1

    def compression(s: float) -> float:
        proj = projections.project_groups(convs, state.channels.groups, labels, s)
        return dense / sum(int(m.sum()) for m in proj.masks.values())

    lo, hi = 0.0, 0.99
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if compression(mid) < ratio else (lo, mid)
    return hi


# ------------------------------------------------------------------------------------------- methods


def method_admm(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int) -> tuple[nn.Module, str]:
    state = analysed(dense, inputs, s).with_(data=task.train)
    steps = [sparsity_for(state, r) for r in b.progressive if sparsity_for(state, r) < s]
    stages = len(steps) + 1  # the budget is shared evenly by the progressive steps
    admm = Admm(sparsity=s, progressive=tuple(steps), iterations=max(1, b.admm_epochs // stages),
                update_every="1 epoch", retrain_epochs=(b.budget - b.admm_epochs) / stages, rho=b.rho,
                rho_growth=b.rho_growth, lr=b.lr, seed=seed, progress=False, scheduler=cosine(0), device="cpu")
    state = run_pipeline(state, [admm, RemoveChannels()])
    try:
        from passes.unused_paths import purify_to_fixed_point
    except ImportError:
        return state.gm.eval(), "removal"
    return purify_to_fixed_point(state).gm.eval(), "removal+P"


def method_magnitude(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int) -> tuple[nn.Module, str]:
    module = graphprune.compile(dense, inputs, sparsity=s).module
    train(module, task.train, b.budget, b.lr, seed)
    return module, "compile+ft"


def tp_pruner(model: nn.Module, inputs: tuple, ratio: float, reg: float):
    import torch_pruning as tp

    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return tp.pruner.GroupNormPruner(model, inputs[0], importance=tp.importance.GroupMagnitudeImportance(p=2),
                                     reg=reg, pruning_ratio=ratio, ignored_layers=[head])


def tp_ratio_for(dense: nn.Module, inputs: tuple, ratio: float) -> float:
    """Torch-Pruning's pruning_ratio reaching the same conv compression (its counting differs from ours)."""
    lo, hi = 0.0, 0.99
    for _ in range(12):
        mid = (lo + hi) / 2
        model = copy.deepcopy(dense)
        tp_pruner(model, inputs, mid, 0.0).step()
        lo, hi = (mid, hi) if conv_params(dense) / conv_params(model) < ratio else (lo, mid)
    return hi


def method_tp(dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int) -> tuple[nn.Module, str]:
    model = copy.deepcopy(dense)
    pruner = tp_pruner(model, inputs, s, b.tp_reg)
    half = b.budget // 2
    train(model, task.train, half, b.lr, seed, after_backward=lambda m: pruner.regularize(m))
    pruner.step()
    train(model, task.train, b.budget - half, b.lr, seed + 1)
    return model, "sparse+prune+ft"


# ---------------------------------------------------------------------------------------------- runs


def dense_model(work: Path, task_name: str, task, name: str, seed: int, b: Budget) -> tuple[nn.Module, tuple, float]:
    size = input_size(task_name, name)
    model, inputs = models_zoo.load(f"zoo:{name}", input_size=size)
    path = work / f"dense_{task_name}_{name}_{seed}_{b.dense_epochs}_{size}px.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        torch.manual_seed(seed)
        for m in model.modules():  # a fresh seeded initialisation per seed
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        train(model, task.train, b.dense_epochs, b.lr_dense, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval(), inputs, accuracy(model, task.test)


def latency(module: nn.Module, dense: nn.Module, inputs: tuple) -> dict[str, float]:
    """Median ms at batch 32, timed round-robin against the dense model (a busy neighbour slows both)."""
    x = inputs[0].expand(32, *inputs[0].shape[1:]).contiguous()
    t = time_variants({"dense": dense, "m": module}, (x,), repeats=20, warmup=3)
    return {"latency_ms": t["m"].median_ms, "speedup": round(t["dense"].median_ms / t["m"].median_ms, 2)}


def validation_split(task):
    """Report on the task's validation split (or, for a task without one, train on 80 % of the
    training set and report on the other 20 %): for choosing settings without looking at the test set."""
    from models_zoo.data import Batches, Task

    if task.val is not None:
        return Task(task.name + "-val", task.train, task.val, task.num_classes, task.input_shape)
    x, y = task.train.x, task.train.y
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(12345))
    val, train_ = perm[: len(y) // 5], perm[len(y) // 5:]
    return Task(task.name + "-val", Batches(x[train_], y[train_], task.train.batch_size, True, task.train.seed),
                Batches(x[val], y[val], 256, False), task.num_classes, task.input_shape)


def run_one(method: str, dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int) -> dict[str, Any]:
    fn = {"admm": method_admm, "magnitude": method_magnitude, "tp": method_tp}[method]
    start = time.perf_counter()
    module, how = fn(dense, inputs, task, s, b, seed)
    seconds = time.perf_counter() - start
    return {"acc": accuracy(module, task.test), "how": how, "seconds": round(seconds, 1),
            "conv_ratio": conv_params(dense) / max(1, conv_params(module)), "params": count_params(module),
            "macs": count_macs(module, inputs), **latency(module, dense, inputs)}


ADMM_ONLY = ("rho", "rho_growth", "admm_epochs", "progressive")


def settings(method: str, budget: dict[str, Any]) -> str:
    """The budget fields a method's result depends on (ADMM's knobs do not change the baselines)."""
    budget = {**asdict(Budget()), **budget}  # records from before a field existed had its default
    return json.dumps({k: v for k, v in budget.items() if method == "admm" or k not in ADMM_ONLY}, sort_keys=True)


def key(r: dict[str, Any]) -> tuple:
    return r["task"], r["model"], r["seed"], r["ratio"], r["method"], settings(r["method"], r["budget"])


def load_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(args: argparse.Namespace, b: Budget) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # near-zero weights left by training must not time as denormals
    work = Path(args.work)
    results_path = work / "results.jsonl"
    results = load_results(results_path)
    done = {key(r) for r in results}
    wanted: list[dict[str, Any]] = []
    for task_name in args.tasks:
        for name in args.models:
            task = TASKS[task_name](size=input_size(task_name, name), batch_size=b.batch_size)
            if args.validation:
                task = validation_split(task)
            for seed in args.seeds:
                dense, inputs, dense_acc = dense_model(work, task.name, task, name, seed, b)
                base = {"task": task.name, "model": name, "seed": seed, "budget": asdict(b)}
                record = {**base, "ratio": 1, "method": "dense"}
                if key(record) not in done:
                    record.update(acc=dense_acc, conv_ratio=1.0, params=count_params(dense),
                                  macs=count_macs(dense, inputs), **latency(dense, dense, inputs))
                    results.append(_append(results_path, record))
                wanted.append(record)
                state = analysed(dense, inputs)
                for ratio in args.ratios:
                    for method in args.methods:
                        record = {**base, "ratio": ratio, "method": method}
                        wanted.append(record)
                        if key(record) in done:
                            continue
                        s = tp_ratio_for(dense, inputs, ratio) if method == "tp" else sparsity_for(state, ratio)
                        record.update(sparsity=round(s, 4), **run_one(method, dense, inputs, task, s, b, seed))
                        results.append(_append(results_path, record))
                        print(f"{task_name} {name} seed {seed} {ratio}x {method}: {record['acc']:.2f} % "
                              f"({record['seconds']} s)", flush=True)
    asked = {key(r) for r in wanted}
    return [r for r in results if key(r) in asked]


def _append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def structadmm_records(results: list[dict[str, Any]], quick: bool, validation: bool) -> list[dict[str, Any]]:
    """The docs' result records (``docs/results/structadmm.jsonl``): one per run, with the dense model's
    accuracy of the same task, model and seed, the conv compression reached, and the protocol (the full
    budget, whether it was a smoke run and which split ``test_acc`` was measured on)."""
    from _results import STRUCTADMM_FIELDS, check

    dense = {(r["task"], r["model"], r["seed"]): r["acc"] for r in results if r["method"] == "dense"}
    out = []
    for r in results:
        extra = {k: r[k] for k in ("how", "sparsity", "params", "macs", "latency_ms", "speedup", "seconds") if k in r}
        protocol = {**asdict(Budget()), **r["budget"], "quick": quick, "evaluated_on": "val" if validation else "test"}
        out.append(check({"task": r["task"], "model": r["model"], "method": r["method"], "seed": r["seed"],
                          "compression": r["conv_ratio"], "target_compression": r["ratio"], "test_acc": r["acc"],
                          "dense_acc": dense[(r["task"], r["model"], r["seed"])], **extra, "protocol": protocol},
                         STRUCTADMM_FIELDS))
    return out


# ---------------------------------------------------------------------------------------------- table


def table(results: list[dict[str, Any]]) -> str:
    rows = {}
    for r in results:
        rows.setdefault((r["task"], r["model"], r["ratio"], r["method"]), []).append(r)
    order = {m: i for i, m in enumerate(("dense", *METHODS))}
    lines = ["| task | model | conv compression | method | test acc % (mean ± std, n) | reached | params | MACs | "
             "latency ms (b=32) | speedup |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(rows, key=lambda k: (k[0], k[1], k[2], order.get(k[3], 9))):
        rs = rows[key]
        accs = [r["acc"] for r in rs]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        method = key[3] + (f" ({rs[0]['how']})" if rs[0].get("how") else "")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]}x | {method} | {statistics.mean(accs):.2f} ± {std:.2f} "
                     f"({len(accs)}) | {statistics.mean(r['conv_ratio'] for r in rs):.1f}x | "
                     f"{statistics.mean(r['params'] for r in rs) / 1e3:.1f}k | "
                     f"{statistics.mean(r['macs'] for r in rs) / 1e6:.2f}M | "
                     f"{statistics.median(r['latency_ms'] for r in rs):.2f} | "
                     f"{statistics.median(r['speedup'] for r in rs):.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet20, digits, 10x and 20x, seed 0, small budget")
    p.add_argument("--tasks", nargs="+", default=["digits"], choices=sorted(TASKS))
    p.add_argument("--models", nargs="+", default=["resnet20"], choices=sorted(INPUT_SIZE),
                   help="default resnet20 (the ~20 min full run); resnet56 and vgg11_bn cost 3-8x more per run")
    p.add_argument("--ratios", nargs="+", type=float, default=[2, 5, 10, 20])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="runs/admm_bench", help="dense checkpoints and results.jsonl")
    p.add_argument("--budget", type=int, default=None, help="epochs per method (default 20, quick 8)")
    p.add_argument("--validation", action="store_true",
                   help="hold out 20 %% of the training set and report on it instead of the test set")
    p.add_argument("--report", action="store_true", help="print the table of every stored result for these "
                   "settings (all seeds and ratios), run nothing")
    p.add_argument("--rho", type=float, default=None, help="(a) initial rho")
    p.add_argument("--rho-growth", type=float, default=None, dest="rho_growth")
    p.add_argument("--admm-epochs", type=int, default=None, dest="admm_epochs")
    p.add_argument("--results", type=Path, help="merge the runs' records into this JSON-lines file (the "
                   "protocol's: docs/results/structadmm.jsonl; tables: benchmarks/results_tables.py structadmm)")
    args = p.parse_args(argv)
    b = Budget()
    if args.quick:
        args.models, args.ratios, args.seeds = ["resnet20"], [10, 20], [0]
        args.work = args.work + "_quick"
        b = Budget(dense_epochs=15, budget=8, admm_epochs=3)
    if args.budget:
        b = Budget(**{**asdict(b), "budget": args.budget, "admm_epochs": args.budget * 2 // 5})
    b = Budget(**{**asdict(b), **{k: getattr(args, k) for k in ("rho", "rho_growth", "admm_epochs")
                                  if getattr(args, k) is not None}})
    args.ratios = [int(r) if float(r).is_integer() else r for r in args.ratios]
    if args.report:  # aggregate what results.jsonl holds for these settings, run nothing
        current = {m: settings(m, asdict(b)) for m in ("dense", *METHODS)}
        results = [r for r in load_results(Path(args.work) / "results.jsonl")
                   if r["model"] in args.models and r["task"].split("-")[0] in args.tasks
                   and settings(r["method"], r["budget"]) == current[r["method"]]]
        print(table(results))
        return
    results = run(args, b)
    if args.results:
        from _results import merge, structadmm_key

        merge(args.results, structadmm_records(results, args.quick, args.validation), structadmm_key)
    print(table(results))


if __name__ == "__main__":
    main()
