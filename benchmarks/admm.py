"""StructADMM (progressive ADMM, purification + unused-path removal) versus one-shot magnitude pruning,
gradual magnitude pruning (AGP) and Torch-Pruning's group-norm sparse training, with the ablations, at equal
total epoch budget after the same dense model.

For each task, model, seed: the dense model is trained once (``dense_epochs``, cached under ``--work``).
For each conv compression ratio r (dense conv parameters / pruned conv parameters) one uniform channel
sparsity s is found (bisection on the exact count the group projection keeps) and every method gets
``budget`` epochs (the methods and ablations: ``benchmarks/_admm_methods.py``): admm, admm-zfixed,
admm-rhofixed, admm-noprog, admm-nopurify, magnitude, agp, tp. ``--tune`` gives every method the same
trials (``TUNE_LRS``) and reports the one best on the validation split. Records carry
``pre_prm_compression`` (the conv compression before P-RM; the final one for methods without P-RM).

Reported: test accuracy mean +- std over seeds, the conv compression actually reached, parameters and
MACs of the pruned model (graphprune.metrics) and measured CPU latency (graphprune.latency, 1 thread,
batch 32, medians timed round-robin with the dense model, whose ratio is the speedup). Torch-Pruning
counts channels differently, so its pruning_ratio is found by its own bisection to reach the same
compression. Results are appended to ``--work/results.jsonl`` as they finish, and a rerun skips what
is already there, so an interrupted run continues.

Run:  python benchmarks/admm.py --quick --results /tmp/structadmm_quick.jsonl   # smoke run (not for the docs)
      python benchmarks/admm.py --tasks mnist5k --models resnet20 vgg11_bn --tune \
          --results docs/results/structadmm.jsonl   # the issue-14 protocol: records for the docs
      python benchmarks/admm.py              # ~20 min on 2 shared cores: resnet20, digits, 2/5/10/20x, 3 seeds
      python benchmarks/admm.py --models resnet56 vgg11_bn --ratios 10 20 --seeds 0   # as in docs/admm.md
      python benchmarks/admm.py --tasks shapes --ratios 10 20
      python benchmarks/admm.py --validation --ratios 20 --rho 0.01 --rho-growth 1.5   # tune off the test set
      python benchmarks/admm.py --report --tasks digits shapes --models resnet20 resnet56 vgg11_bn
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
from _admm_methods import METHODS, tp_ratio_for  # noqa: E402
from _admm_train import Budget, accuracy, analysed, sparsity_for, train  # noqa: E402
from torch import nn  # noqa: E402

import models_zoo  # noqa: E402
from graphprune.conv_census import conv_params  # noqa: E402
from graphprune.latency import time_variants  # noqa: E402
from graphprune.metrics import count_macs, count_params  # noqa: E402
from models_zoo.data import TASKS  # noqa: E402

INPUT_SIZE = {"resnet20": 8, "resnet56": 8, "vgg11_bn": 16}  # digits are 8x8; VGG needs a multiple of 16
MIN_TASK_SIZE = {"shapes": 16, "mnist5k": 16}  # shapes aliases below 16 px; MNIST is 28x28


def input_size(task_name: str, model: str) -> int:
    return max(INPUT_SIZE[model], MIN_TASK_SIZE.get(task_name.split("-")[0], 0))


TUNE_LRS = (0.01, 0.03)  # --tune: every method gets these trials, chosen on the validation split
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


def run_one(method: str, dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int,
            ratio: float, val=None) -> dict[str, Any]:
    start = time.perf_counter()
    module, how, extra = METHODS[method](dense, inputs, task, s, b, seed, ratio)
    seconds = time.perf_counter() - start
    record = {"acc": accuracy(module, task.test), "how": how, "seconds": round(seconds, 1),
              "conv_ratio": conv_params(dense) / max(1, conv_params(module)), "params": count_params(module),
              "macs": count_macs(module, inputs), **latency(module, dense, inputs), **extra}
    if val is not None:
        record["val_acc"] = accuracy(module, val)
    return record


def tuned(method: str, dense: nn.Module, inputs: tuple, task, s: float, b: Budget, seed: int,
          ratio: float) -> dict[str, Any]:
    """The same trials for every method (``TUNE_LRS``), each trained on the training split; the one with
    the best validation accuracy is reported (its test accuracy), with every trial's validation score."""
    trials = {lr: run_one(method, dense, inputs, task, s, Budget(**{**asdict(b), "lr": lr}), seed, ratio, task.val)
              for lr in TUNE_LRS}
    best = max(trials, key=lambda lr: trials[lr]["val_acc"])
    return {**trials[best], "tuned": {"lr": best, "trials": {str(lr): t["val_acc"] for lr, t in trials.items()}}}


ADMM_ONLY = ("rho", "rho_growth", "admm_epochs", "progressive", "structure", "purify_eta", "purify_sigma",
             "prm_epochs")


def settings(method: str, budget: dict[str, Any]) -> str:
    """The budget fields a method's result depends on (ADMM's knobs do not change the baselines)."""
    budget = {**asdict(Budget()), **budget}  # records from before a field existed had its default
    return json.dumps({k: v for k, v in budget.items() if method.startswith("admm") or k not in ADMM_ONLY},
                      sort_keys=True)


def key(r: dict[str, Any]) -> tuple:
    return (r["task"], r["model"], r["seed"], r["ratio"], r["method"], settings(r["method"], r["budget"]),
            r.get("tune", False))


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
                base = {"task": task.name, "model": name, "seed": seed, "budget": asdict(b), "tune": args.tune}
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
                        s = tp_ratio_for(dense, inputs, ratio, conv_params) if method == "tp" else \
                            sparsity_for(state, ratio)
                        one = tuned if args.tune else run_one
                        record.update(sparsity=round(s, 4), **one(method, dense, inputs, task, s, b, seed, ratio))
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
        extra = {k: r[k] for k in ("how", "sparsity", "params", "macs", "latency_ms", "speedup", "seconds", "val_acc",
                                   "tuned", "prm") if k in r}
        protocol = {**asdict(Budget()), **r["budget"], "quick": quick, "tune": r.get("tune", False),
                    "evaluated_on": "val" if validation else "test"}
        pre = r.get("pre_prm_compression")  # None: the method has no P-RM step, so nothing is added after it
        out.append(check({"task": r["task"], "model": r["model"], "method": r["method"], "seed": r["seed"],
                          "compression": r["conv_ratio"],
                          "pre_prm_compression": r["conv_ratio"] if pre is None else pre,
                          "target_compression": r["ratio"], "test_acc": r["acc"],
                          "dense_acc": dense[(r["task"], r["model"], r["seed"])], **extra, "protocol": protocol},
                         (*STRUCTADMM_FIELDS, "pre_prm_compression")))
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
    p.add_argument("--quick", action="store_true", help="resnet20, 10x, seed 0, small budget (a smoke run: its "
                   "records say quick and are not for the docs)")
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
    p.add_argument("--tune", action="store_true", help=f"every method gets the same trials (lr in {TUNE_LRS}), "
                   "trained on the training split; the best on the validation split is reported")
    p.add_argument("--report", action="store_true", help="print the table of every stored result for these "
                   "settings (all seeds and ratios), run nothing")
    p.add_argument("--rho", type=float, default=None, help="(a) initial rho")
    p.add_argument("--rho-growth", type=float, default=None, dest="rho_growth")
    p.add_argument("--admm-epochs", type=int, default=None, dest="admm_epochs")
    p.add_argument("--structure", default=None, help="the ADMM set (group, filter, shape, 'filter+shape', ...)")
    p.add_argument("--purify-eta", type=float, default=None, dest="purify_eta")
    p.add_argument("--purify-sigma", type=float, default=None, dest="purify_sigma")
    p.add_argument("--results", type=Path, help="merge the runs' records into this JSON-lines file (the "
                   "protocol's: docs/results/structadmm.jsonl; tables: benchmarks/results_tables.py structadmm)")
    args = p.parse_args(argv)
    b = Budget()
    if args.quick:
        args.models, args.ratios, args.seeds = ["resnet20"], [10], [0]
        args.work = args.work + "_quick"
        b = Budget(dense_epochs=15, budget=8, admm_epochs=4)  # 2 Z/U updates per progressive step
    if args.budget:
        b = Budget(**{**asdict(b), "budget": args.budget, "admm_epochs": args.budget * 2 // 5})
    knobs = ("rho", "rho_growth", "admm_epochs", "structure", "purify_eta", "purify_sigma")
    b = Budget(**{**asdict(b), **{k: getattr(args, k) for k in knobs if getattr(args, k) is not None}})
    args.ratios = [int(r) if float(r).is_integer() else r for r in args.ratios]
    if args.tune and args.validation:
        p.error("--tune chooses on the task's validation split; --validation reports on it (use one)")
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
