"""The schedule of many plans as JSON, to show a refactoring leaves every schedule as it was.

Plans: the recipes, ``docs/examples/plan.toml``, every ```toml block of the docs, a combinatorial set
(rule kinds x [purify]/[admm]/[finetune]/measure-latency/remove-unused-paths x [emit]) and pinned
pipelines. Per plan: ``Schedule.to_dict()`` (labels, why, facts, fingerprints), the ``explain`` text
and the goals, or the error. The re-runs ``explain``/``to_dict`` list since the scheduler derives its
placements from declarations are left out, so a dump compares with one made before (d0cb581):

    git worktree add /tmp/base d0cb581 --detach
    (cd /tmp/base && python $PWD/benchmarks/schedule_dump.py /tmp/before.json)
    python benchmarks/schedule_dump.py /tmp/after.json && diff /tmp/before.json /tmp/after.json

Run it from the root of the tree whose scheduler it dumps."""

import itertools
import json
import pathlib
import re
import sys
import tomllib

sys.path.insert(0, ".")
from graphprune import scheduler  # noqa: E402
from graphprune.errors import GraphpruneError  # noqa: E402
from graphprune.plan import load_plan  # noqa: E402

plans = {}
for p in sorted(pathlib.Path("graphprune/plan/recipes").glob("*.toml")):
    plans[f"recipe:{p.stem}"] = p.stem
plans["docs/examples/plan.toml"] = "docs/examples/plan.toml"
for md in sorted(pathlib.Path("docs").glob("*.md")) + [pathlib.Path("README.md")]:
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", md.read_text(), re.S)):
        try:
            plans[f"{md}:toml{i}"] = tomllib.loads(block)
        except Exception as e:
            print("skip", md, i, e, file=sys.stderr)
rules = {"none": [], "chan": [{"select": "*", "sparsity": 0.5}], "l1": [{"sparsity": 0.5, "score": "l1"}],
         "irr": [{"structure": "irregular", "sparsity": 0.8, "score": "snip"}],
         "nm": [{"structure": "2:4", "sparsity": 0.5}],
         "chan+irr": [{"select": "layer*", "sparsity": 0.5},
                      {"structure": "irregular", "sparsity": 0.9, "score": "l2"}],
         "budget": [{"budget": {"macs": 0.5}, "score": "fpgm"}],
         "shape": [{"structure": "shape", "sparsity": 0.5, "score": "px"}]}
sections = {"purify": {"purify": {"eta": 0.5}}, "admm": {"admm": {"iterations": 2}},
            "finetune": {"finetune": {"epochs": 0.5}}, "latency": {"passes": {"measure-latency": {}}},
            "rup": {"passes": {"remove-unused-paths": {}}}}
emits = {"": {}, "fuse": {"emit": {"fuse": True}}, "path": {"emit": {"path": "out.onnx"}},
         "both": {"emit": {"fuse": True, "path": "out.pt2"}}}
for (rn, r), (en, e) in itertools.product(rules.items(), emits.items()):
    for k in range(0, 3):
        for combo in itertools.combinations(sections, k):
            d = {"prune": r} if r else {}
            for c in combo:
                for key, val in sections[c].items():
                    if key == "passes":
                        d.setdefault("passes", {}).update(val)
                    else:
                        d[key] = val
            d.update(e)
            plans[f"combo:{rn}|{en}|{'+'.join(combo)}"] = d
pinned = [["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate", "remove-channels"],
          ["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate", "remove-channels",
           "score-magnitude", "allocate", "remove-channels"],
          ["trace", "analyze-channels", "score-magnitude", "allocate", "remove-channels"],
          ["trace", "canonicalize", "analyze-channels", "score-magnitude", "allocate", "remove-channels",
           "remove-unused-paths", "remove-channels", "fuse", "emit"],
          ["trace", "canonicalize", "analyze-channels", "score-weight-magnitude", "apply-masks"]]
for i, p in enumerate(pinned):
    plans[f"pinned{i}"] = {"prune": [{"sparsity": 0.5}], "pipeline": p}
plans["pinned-mask"] = {"prune": [{"structure": "irregular", "sparsity": 0.5}],
                        "pipeline": ["trace", "canonicalize", "analyze-channels", "score-weight-magnitude",
                                     "apply-masks"]}
out = {}
for key, spec in plans.items():
    try:
        s = scheduler.schedule(load_plan(spec))
        text = s.explain().splitlines()
        steps = [{k: v for k, v in step.items() if k != "reruns"} for step in s.to_dict()]
        explain = [line for line in text if not line.startswith("analyses a pass") and "re-run" not in line]
        out[key] = {"steps": steps, "explain": explain, "goals": s.goals}
    except GraphpruneError as exc:
        out[key] = {"error": f"{type(exc).__name__}: {exc}"}
json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True)
print(len(out), "plans;", sum("error" in v for v in out.values()), "errors")
