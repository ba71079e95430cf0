"""Compare two coverage-sweep result files model by model (benchmarks/coverage_sweep.py --out ...):
the evidence that a refactor changed no pruning outcome. Prints every model whose status, MACs, params,
groups, unknown ops, frozen or inexact reasons differ, then a one-line summary; exits 1 if any differ.

    python benchmarks/coverage_diff.py docs/results/redesign/coverage_tv_d0cb581.jsonl \\
        docs/results/redesign/coverage_tv_e2e0774.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys

COMPARED = ("status", "stage", "error", "shape_ok", "out_shape", "macs_before", "macs_after", "macs_reduction",
            "params_reduction", "groups", "prunable_groups", "unknown_ops", "unknown_op_nodes", "frozen", "inexact")


def load(path: str) -> dict[str, dict]:
    with open(path) as f:
        return {r["model"]: r for r in map(json.loads, f) if r.get("model")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args(argv)
    before, after = load(args.before), load(args.after)
    common = sorted(set(before) & set(after))
    changed = 0
    for model in common:
        diff = {k: (before[model].get(k), after[model].get(k)) for k in COMPARED
                if before[model].get(k) != after[model].get(k)}
        if diff:
            changed += 1
            print(f"{model}: {diff}")
    print(f"{len(common)} models compared: {len(common) - changed} identical, {changed} different; "
          f"only before: {len(set(before) - set(after))}, only after: {len(set(after) - set(before))}")
    return 1 if changed or set(before) ^ set(after) else 0


if __name__ == "__main__":
    sys.exit(main())
