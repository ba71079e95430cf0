"""Benchmark results as data: records merge by key (a rerun replaces, never duplicates), carry the
fields the docs need, and the docs tables are generated from them with protocols kept apart and smoke
runs left out."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("single_thread")


def bench(name: str):
    """A module of benchmarks/ (not a package), loaded once."""
    key = f"_graphprune_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def pai_record(method: str, level: float, acc: float, seed: int = 0, quick: bool = False, kind: str = "irregular",
               collapsed: int = 0) -> dict:
    return {"task": "mnist5k", "model": "small_cnn", "method": method, "kind": kind, "level": level,
            "density": level, "seed": seed, "test_acc": acc, "collapsed_layers": collapsed,
            "protocol": {"rounds": 100, "quick": quick}}


def test_merge_replaces_records_with_the_same_key(tmp_path):
    results = bench("_results")
    path = tmp_path / "pai.jsonl"
    results.merge(path, [pai_record("px", 0.01, 30.0), pai_record("px", 0.01, 31.0, seed=1)], results.pai_key)
    results.merge(path, [pai_record("px", 0.01, 40.0)], results.pai_key)  # rerun of seed 0
    records = results.load(path)
    assert sorted((r["seed"], r["test_acc"]) for r in records) == [(0, 40.0), (1, 31.0)]
    assert all(json.loads(line) for line in path.read_text().splitlines())
    with pytest.raises(KeyError, match="collapsed_layers"):
        results.check({k: v for k, v in pai_record("px", 0.01, 1.0).items() if k != "collapsed_layers"},
                      results.PAI_FIELDS)


def test_pai_tables_come_from_the_records():
    tables = bench("results_tables")
    records = [pai_record("dense", 1.0, 97.0, kind="dense"), pai_record("px", 0.01, 50.0),
               pai_record("px", 0.01, 54.0, seed=1), pai_record("snip", 0.01, 40.0, collapsed=2),
               pai_record("snip", 0.01, 99.0, quick=True)]
    text = tables.render("pai", records)
    assert text.count("Protocol:") == 1 and "(4 records)" in text  # the smoke record is left out
    assert "| mnist5k | small_cnn | px | 97.0 ± 0.0 | **52.0 ± 2.8** |" in text
    assert "| mnist5k | small_cnn | snip | 97.0 ± 0.0 | 40.0 ± 0.0 |" in text
    assert "| mnist5k | small_cnn | snip | 1 / 0 of 1 |" in text
    assert tables.render("pai", records, include_quick=True).count("Protocol:") == 2


def test_structadmm_table_comes_from_the_records():
    tables = bench("results_tables")
    base = {"task": "mnist5k", "model": "resnet20", "protocol": {"budget": 20}}
    records = [{**base, "method": m, "seed": s, "compression": c, "target_compression": t, "test_acc": a,
                "dense_acc": 99.0}
               for m, s, c, t, a in [("admm", 0, 10.2, 10, 98.0), ("admm", 1, 10.4, 10, 97.0),
                                     ("magnitude", 0, 10.2, 10, 96.0)]]
    text = tables.render("structadmm", records)
    assert "| mnist5k | resnet20 | 10x | admm | 97.5 ± 0.7 (2) | 99.0 ± 0.0 | 10.3x |" in text
    assert "| mnist5k | resnet20 | 10x | magnitude | 96.0 ± 0.0 (1) |" in text


def test_a_px_run_writes_complete_records_for_itself_and_its_controls():
    """One real cell of the PAI benchmark (PX at 10 %, two training steps) on the BN-free plain CNN: a
    record for PX and for each control, with every field the docs need, accuracies in %, the protocol;
    the controls keep PX's density exactly and are trained at their own learning rate."""
    run = bench("_pai_run")
    cfg = run.Config(steps={"mnist5k": 2}, rounds=2)
    records = run.execute(run.Run("mnist5k", "plain_cnn", "px", "irregular", 0.1, 0, lr=0.01), cfg,
                          {("mnist5k", "plain_cnn", "px-shuffled"): 0.003})
    assert [r["method"] for r in records] == ["px", "px-shuffled", "px-filter-shuffled"]
    assert [r["lr"] for r in records] == [0.01, 0.003, 0.01]
    for record in records:
        assert set(bench("_results").PAI_FIELDS) <= set(record)
        assert 0 <= record["test_acc"] <= 100 and 0 <= record["val_acc"] <= 100
        assert record["density"] == records[0]["density"] == pytest.approx(0.1, abs=1e-3)
        assert record["collapsed_layers"] == 0 and record["log10_paths"] > 0
        assert record["protocol"]["init"] == "paper" and record["protocol"]["masked_data_copy"] is True


def test_tuning_chooses_each_methods_rate_on_validation_with_equal_trials():
    pai = bench("pai")
    cfg = pai.Config(steps={"mnist5k": 2}, rounds=2, lrs=(0.003, 0.01))
    trials = pai.tuning_plan(["mnist5k"], ["plain_cnn"], ["snip", "px"], cfg)
    per_method = {m: sorted(r.lr for r in trials if r.method == m) for m in ("dense", "snip", "px")}
    assert per_method == {m: [0.003, 0.01] for m in per_method}  # the same trials for every method
    assert all(r.phase == "tune" and r.seed == pai.TUNE_SEED for r in trials)
    proto = cfg.protocol()
    tuned = [{"task": "mnist5k", "model": "plain_cnn", "method": m, "phase": "tune", "lr": lr, "val_acc": v,
              "test_acc": 100 - v, "protocol": proto}
             for m, lr, v in [("snip", 0.003, 60.0), ("snip", 0.01, 50.0), ("px", 0.003, 70.0), ("px", 0.01, 70.0)]]
    assert pai.chosen_lr(tuned, "mnist5k", "plain_cnn", "snip", cfg) == 0.003  # by validation, not test
    assert pai.chosen_lr(tuned, "mnist5k", "plain_cnn", "px", cfg) == 0.003  # a tie goes to the first rate
    assert pai.chosen_lr(tuned, "mnist5k", "plain_cnn", "grasp", cfg) == 0.003  # untuned: the first
    lrs = pai.tuned_lrs(tuned, ["mnist5k"], ["plain_cnn"], ["snip"], cfg)
    runs = pai.test_plan(range(2), (0.01,), (), ["mnist5k"], ["plain_cnn"], ["snip"], lrs)
    assert sorted((r.method, r.seed, r.lr) for r in runs) == [("dense", 0, 0.003), ("dense", 1, 0.003),
                                                              ("snip", 0, 0.003), ("snip", 1, 0.003)]


def test_resume_skips_only_runs_whose_every_record_is_stored():
    pai = bench("pai")
    cfg = pai.Config(steps={"mnist5k": 2}, rounds=2)
    px, snip = (pai.Run("mnist5k", "plain_cnn", m, "irregular", 0.01, 0, 0.01) for m in ("px", "snip"))
    stored = [{**px.__dict__, "method": m, "protocol": cfg.protocol()} for m in ("px", "px-shuffled")]
    stored.append({**snip.__dict__, "method": "snip", "protocol": cfg.protocol()})
    assert pai.pending([px, snip], cfg, stored) == [px]  # px-filter-shuffled is missing
    stored.append({**px.__dict__, "method": "px-filter-shuffled", "protocol": cfg.protocol()})
    assert pai.pending([px, snip], cfg, stored) == []
    other = pai.Config(steps={"mnist5k": 3}, rounds=2)  # another protocol's records do not count
    assert pai.pending([px, snip], other, stored) == [px, snip]


def test_paired_comparison_and_floor_read_the_same_seeds():
    tables = bench("results_tables")
    records = [pai_record(m, 0.01, acc, seed=s) for m, s, acc in
               [("px", 0, 50.0), ("px", 1, 40.0), ("snip", 0, 45.0), ("snip", 1, 42.0),
                ("grasp", 0, 10.0), ("grasp", 1, 10.0), ("synflow", 0, 44.0), ("synflow", 1, 44.0)]]
    text = tables.pai_tables(records)
    assert "| mnist5k | small_cnn | snip | +1.5 (1/2) |" in text
    assert "| mnist5k | small_cnn | synflow | +1.0 (1/2) |" in text
    assert "- 1 %: 1 of 1 cells with every method recorded" in text
    text = tables.pai_tables([*records, pai_record("synflow", 0.01, 90.0, seed=2)])
    assert "- 1 %: 0 of 1 cells" in text  # synflow's mean is now above PX's


def test_the_pai_plot_draws_a_panel_per_cell_and_a_line_per_method():
    pytest.importorskip("matplotlib")
    plots = bench("results_plots")
    records = [pai_record(m, lv, acc, seed=s) for m in ("px", "snip") for lv in (0.01, 0.002) for s in (0, 1)
               for acc in [50.0 + s]]
    records += [{**pai_record("px", 0.01, 10.0), "task": "shapes"}, pai_record("dense", 1.0, 97.0, kind="dense"),
                {**pai_record("grasp", 0.01, 5.0), "protocol": {"rounds": 5}},
                pai_record("snip", 0.01, 1.0, quick=True)]
    records = plots.main_protocol(records)
    assert {r["method"] for r in records} == {"px", "snip", "dense"}  # the older protocol and the smoke run left out
    fig = plots.pai_figure(records)
    assert [ax.get_title() for ax in fig.axes] == ["mnist5k / small_cnn", "shapes / small_cnn"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["dense", "snip", "px"]
    px = next(c for c in fig.axes[0].containers if c.get_label() == "px")
    assert list(px.lines[0].get_ydata()) == [50.5, 50.5]  # mean over the two seeds at each density
    assert list(px.lines[0].get_xdata()) == [0.2, 1.0]  # density in %