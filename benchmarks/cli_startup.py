"""CLI start-up benchmark: how long the cheap ``graphprune`` commands take as whole processes, next to
importing torch (and torch + torchvision + timm for ``zoo``).

What is measured
----------------
Each command runs as a fresh ``python`` process (``python -m graphprune ...`` with this checkout first
on ``PYTHONPATH``; output discarded), ``--runs`` times after one warm-up run each, the commands
interleaved round by round (A B C ... A B C ...) so that a change in machine load hits all of them
alike. Per command: the median wall time and the median CPU time (user + system of the child, from
``getrusage(RUSAGE_CHILDREN)``), min and max wall. Ratios are taken per round against that round's
baseline run (``python -c "import torch"``, or ``import torch, torchvision, timm`` for ``zoo``) and the
median of the per-round ratios is reported, which stays meaningful when the machine's speed drifts.

The floors (issue 15): ``--help`` and an argument error under 0.25 of ``import torch``; ``zoo`` under
1.5 of ``import torch, torchvision, timm``. The script prints the table and exits 0; it judges nothing
(``--json`` writes the numbers).

    python benchmarks/cli_startup.py --runs 11
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = "import torch"
LIBRARIES = "import torch, torchvision, timm"
BAD_PLAN = '[allocate]\nscope = "bogus"\n'


def commands(bad_plan: Path) -> dict[str, tuple[list[str], str | None]]:
    """label -> (argv, the label of the baseline it is compared with, or None for a baseline)."""
    gp = [sys.executable, "-m", "graphprune"]
    return {
        TORCH: ([sys.executable, "-c", TORCH], None),
        LIBRARIES: ([sys.executable, "-c", LIBRARIES], None),
        "graphprune --help": ([*gp, "--help"], TORCH),
        "graphprune compile (missing SPEC)": ([*gp, "compile"], TORCH),
        "graphprune compile zoo:resnet20 --sparsity half": ([*gp, "compile", "zoo:resnet20", "--sparsity", "half"],
                                                            TORCH),
        "graphprune compile zoo:resnet2 (unknown model)": ([*gp, "compile", "zoo:resnet2"], TORCH),
        "graphprune plan bad.toml (plan error)": ([*gp, "plan", str(bad_plan)], TORCH),
        "graphprune plan --list": ([*gp, "plan", "--list"], TORCH),
        "graphprune zoo": ([*gp, "zoo"], LIBRARIES),
    }


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, cpu s, exit code) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO,
                          check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, code


def measure(cmds: dict[str, tuple[list[str], str | None]], runs: int) -> dict[str, dict[str, list[float]]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("GRAPHPRUNE_PROGRESS", None)
    samples: dict[str, dict[str, list[float]]] = {label: {"wall": [], "cpu": [], "code": []} for label in cmds}
    for round_ in range(runs + 1):  # round 0 is the warm-up (file cache, bytecode)
        for label, (argv, _) in cmds.items():
            wall, cpu, code = run_once(argv, env)
            if round_:
                for key, value in (("wall", wall), ("cpu", cpu), ("code", code)):
                    samples[label][key].append(value)
    return samples


def summarise(cmds: dict[str, tuple[list[str], str | None]],
              samples: dict[str, dict[str, list[float]]]) -> list[dict[str, object]]:
    rows = []
    for label, (_, baseline) in cmds.items():
        s = samples[label]
        row: dict[str, object] = {
            "command": label, "exit": sorted(set(int(c) for c in s["code"])),
            "wall_median_s": statistics.median(s["wall"]), "wall_min_s": min(s["wall"]),
            "wall_max_s": max(s["wall"]), "cpu_median_s": statistics.median(s["cpu"]), "baseline": baseline,
        }
        if baseline is not None:
            b = samples[baseline]
            row["wall_ratio"] = statistics.median(a / z for a, z in zip(s["wall"], b["wall"]))
            row["cpu_ratio"] = statistics.median(a / z for a, z in zip(s["cpu"], b["cpu"]))
        rows.append(row)
    return rows


def table(rows: list[dict[str, object]], runs: int) -> str:
    lines = [f"whole processes, {runs} interleaved runs each after one warm-up; medians; ratio = median of "
             "per-round ratios to the baseline",
             "",
             "| command | exit | wall s (min-max) | cpu s | vs baseline | wall ratio | cpu ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = (f"{r['wall_ratio']:.3f} | {r['cpu_ratio']:.3f}" if r["baseline"] else "- | -")
        lines.append(f"| `{r['command']}` | {','.join(map(str, r['exit']))} | {r['wall_median_s']:.3f} "
                     f"({r['wall_min_s']:.3f}-{r['wall_max_s']:.3f}) | {r['cpu_median_s']:.3f} | "
                     f"{'`' + str(r['baseline']) + '`' if r['baseline'] else 'baseline'} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs per command (default 7)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bad_plan = Path(tmp) / "bad.toml"
        bad_plan.write_text(BAD_PLAN)
        cmds = commands(bad_plan)
        rows = summarise(cmds, measure(cmds, args.runs))
    print(table(rows, args.runs))
    print(f"\nload: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1, 5, 15 min) on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": args.runs, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
