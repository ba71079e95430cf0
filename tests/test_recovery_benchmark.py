"""benchmarks/recovery.py: each tuned method's setting is chosen on validation accuracy (never test), the
table reports that trial's test accuracy as mean +- std over seeds with the distill - finetune gap taken
per seed, the committed results regenerate the docs' tables, and ``--quick`` runs every method end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_benchmark_results import bench

pytestmark = pytest.mark.usefixtures("single_thread")

BASE = {"task": "mnist5k", "model": "resnet20", "ratio": 2.0, "epochs": 2.0, "dense_epochs": 15, "image_size": 16}


def _records(module) -> list[dict]:  # noqa: ANN001
    """Two seeds; finetune's second trial (lr 0.02) is best on validation but worst on test; distill's second
    (features) is best on validation; a third finetune trial, outside the protocol (not one of
    FINETUNE_TRIALS), is best on both."""
    ft, kd = module.FINETUNE_TRIALS, module.DISTILL_TRIALS
    accs = [("none", {}, ((0.3, 0.3), (0.5, 0.5))), ("bn", {}, ((0.9, 0.9), (0.9, 0.9))),
            ("finetune", ft[0], ((0.95, 0.99), (0.95, 0.99))), ("finetune", ft[1], ((0.97, 0.96), (0.97, 0.98))),
            ("finetune", {"lr": 0.5}, ((0.99, 0.995), (0.99, 0.995))),
            ("distill", kd[0], ((0.90, 0.99), (0.90, 0.99))), ("distill", kd[1], ((0.98, 0.97), (0.98, 0.98)))]
    records = []
    for method, trial, per_seed in accs:
        for seed, (val, test) in enumerate(per_seed):
            records.append({**BASE, "seed": seed, "method": method, "trial": trial, "val_acc": val, "test_acc": test,
                            "dense_acc": 0.97 + seed / 100, "dense_val_acc": 0.98})
    return records


def test_settings_are_chosen_on_validation_and_the_gap_is_paired() -> None:
    module = bench("recovery")
    assert {"lr": 0.5} not in module.FINETUNE_TRIALS  # the synthetic records' third finetune trial
    row = module.table(_records(module)).splitlines()[2]
    assert row == ("| mnist5k | resnet20 | 1/2 | 15, 2 | 2 | 97.5 ± 0.7 | 40.0 ± 14.1 | 90.0 ± 0.0 | 97.0 ± 1.4 | "
                   "97.5 ± 0.7 | +0.5 ± 0.7 | lr 0.02 | features, lr 0.01 |")
    trials = module.trials_table(_records(module)).splitlines()[2:]
    assert trials[0] == "| resnet20 | 1/2 | finetune | lr 0.01 | 95.0 ± 0.0 | 99.0 ± 0.0 |  |"
    assert trials[1].endswith("| lr 0.02 | 97.0 ± 0.0 | 97.0 ± 1.4 | yes |") and len(trials) == 4


def test_tables_are_written_between_their_markers(tmp_path: Path) -> None:
    module = bench("recovery")
    results, doc = tmp_path / "r.jsonl", tmp_path / "doc.md"
    results.write_text("".join(json.dumps(r) + "\n" for r in _records(module)))
    doc.write_text("intro\n<!-- recovery-table: start -->\nold\n<!-- recovery-table: end -->\nmid\n"
                   "<!-- recovery-trials: start -->\nold\n<!-- recovery-trials: end -->\noutro\n")
    module.write_tables(results, doc)
    text = doc.read_text()
    assert text.startswith("intro\n") and "\nmid\n" in text and text.endswith("outro\n") and "old" not in text
    assert module.table(_records(module)) in text and module.trials_table(_records(module)) in text


def test_committed_results_regenerate_the_docs_tables() -> None:
    module = bench("recovery")
    records = module.load_results(module.RESULTS)
    doc = module.DOC.read_text()
    assert records and module.table(records) in doc and module.trials_table(records) in doc
    rows = module._rows(records)
    assert len(rows) == 4 and {r[1] for r in rows} == {"resnet20", "vgg11_bn"} and {r[2] for r in rows} == {2.0, 4.0}
    for methods in rows.values():  # equal trials, every trial on 5 seeds
        assert len(methods["finetune"]) == len(methods["distill"]) == module.PROTOCOL_TRIALS
        assert all(len(by_seed) == 5 for m in methods.values() for by_seed in m.values())


def test_quick_run_records_every_method(tmp_path: Path) -> None:
    module = bench("recovery")
    results = tmp_path / "quick.jsonl"
    args = module.parse_args(["--quick", "--work", str(tmp_path), "--results", str(results)])
    module.run(args)
    records = module.load_results(results)
    assert [r["method"] for r in records] == list(module.METHODS)
    assert all(0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["macs_kept"] <= 0.55 for r in records)
    assert records[2]["trial"] == module.FINETUNE_TRIALS[0] and records[3]["trial"] == module.DISTILL_TRIALS[0]
    module.run(args)  # a rerun skips what is there
    assert len(module.load_results(results)) == len(records)
