"""benchmarks/recovery.py's table: mean +- std over seeds per row, and the distill - finetune gap taken per
seed (the two share the pruned model and the batch order of a seed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "recovery.py"


def _module():
    spec = importlib.util.spec_from_file_location("recovery_benchmark", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_aggregates_seeds_and_pairs_the_gap(tmp_path: Path) -> None:
    bench = _module()
    base = {"task": "digits", "model": "resnet20", "ratio": 2.0, "epochs": 2.0, "dense_epochs": 8, "image_size": 16}
    accs = {"none": (0.3, 0.5), "bn": (0.9, 0.9), "finetune": (0.96, 0.98), "distill": (0.97, 0.98)}
    records = [{**base, "seed": seed, "method": m, "test_acc": accs[m][seed], "dense_acc": 0.97 + seed / 100}
               for seed in (0, 1) for m in bench.METHODS]
    row = bench.table(records).splitlines()[2]
    assert row == ("| digits | resnet20 | 1/2 | 2 | 0.9, 4 | 2 | 97.5 ± 0.7 | 40.0 ± 14.1 | 90.0 ± 0.0 | 97.0 ± 1.4 | "
                   "97.5 ± 0.7 | +0.5 ± 0.7 |")
    results, doc = tmp_path / "r.jsonl", tmp_path / "doc.md"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    doc.write_text(f"intro\n{bench.TABLE_START}\nold\n{bench.TABLE_END}\noutro\n")
    bench.write_table(results, doc)
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text and row in text
