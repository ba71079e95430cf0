"""Same pruned models before and after a change that must not change results (a speed-up).

For every model spec, one fresh process per tree compiles it with the default plan (50 %, L2) and
records a fingerprint of the result: parameters and MACs before/after, every kept index, the report's
``inexact``, ``frozen`` and ``unknown_ops`` lists, which statistics were kept over the original width,
and a hash of the pruned module's output on the example inputs (bitwise). The parent prints one row
per model and exits 1 when any field differs between the trees.

    git archive <commit> | tar -x -C /tmp/gp_before
    python benchmarks/report_identity.py --before /tmp/gp_before            # this tree is "after"
    python benchmarks/report_identity.py --before /tmp/a --after /tmp/b --specs zoo:resnet20,torchvision:resnet50
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TORCHVISION = ("resnet50", "vit_b_16", "convnext_tiny", "swin_t", "mobilenet_v2", "densenet121")
FIELDS = ("params", "macs", "kept", "inexact", "frozen", "unknown_ops", "statistics", "output")


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(spec: str) -> dict:
    """Compile ``spec`` with the graphprune first on sys.path; the fields compared across trees."""
    import torch

    import graphprune
    from models_zoo import load

    torch.manual_seed(0)
    model, inputs = load(spec)
    result = graphprune.compile(model, inputs, sparsity=0.5)
    rep = result.report
    with torch.no_grad():
        out = result.module(*inputs)
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    output = hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in leaves)).hexdigest()[:16]
    return {"params": [rep.params_before, rep.params_after], "macs": [rep.macs_before, rep.macs_after],
            "kept": _digest(rep.kept), "inexact": rep.inexact, "frozen": _digest(rep.frozen),
            "unknown_ops": rep.unknown_ops, "statistics": rep.artifacts.get("statistics"), "output": output}


def _child(tree: Path, spec: str) -> dict:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[3]); "
            "import report_identity as r; print('RESULT ' + json.dumps(r.fingerprint(sys.argv[2]), default=str))")
    proc = subprocess.run([sys.executable, "-c", code, str(tree), spec, str(Path(__file__).parent)],
                          capture_output=True, text=True, cwd=str(tree))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    lines = (proc.stderr.strip().splitlines() or ["?"])
    return {"error": lines[-1][:200]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="tree with the reference graphprune")
    ap.add_argument("--after", type=Path, default=REPO, help="tree with the changed graphprune (default: this one)")
    ap.add_argument("--specs", help="comma-separated model specs (default: every zoo model and six torchvision)")
    args = ap.parse_args(argv)
    if args.specs:
        specs = [s for s in args.specs.split(",") if s]
    else:
        sys.path.insert(0, str(args.after))
        from models_zoo import catalog

        specs = [e.name if hasattr(e, "name") else str(e) for e in catalog()] + \
            [f"torchvision:{m}" for m in TORCHVISION]
    differ = 0
    for spec in specs:
        before, after = _child(args.before, spec), _child(args.after, spec)
        bad = ["error"] if "error" in before or "error" in after else \
            [f for f in FIELDS if before.get(f) != after.get(f)]
        differ += bool(bad)
        status = "identical" if not bad else "DIFFERS: " + ", ".join(bad)
        detail = before.get("error") or after.get("error") or f"params {after.get('params')} macs {after.get('macs')}"
        print(f"{spec:28s} {status:12s} {detail}", flush=True)
    print(f"{len(specs) - differ}/{len(specs)} identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
