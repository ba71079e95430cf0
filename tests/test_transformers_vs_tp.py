"""benchmarks/transformers_vs_tp.py: graphprune's rows are exact, its hidden-width row on Llama removes at least
as many parameters as Torch-Pruning, refusals and Torch-Pruning's timeouts are rows that say why, and the JSON
and the docs table hold what the benchmark's functions return (no number typed in)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from tests.test_benchmark_results import REPO, bench

pytest.importorskip("transformers")
pytest.importorskip("torch_pruning")


@pytest.fixture(scope="module")
def vs_tp():
    return bench("transformers_vs_tp")


@pytest.fixture(scope="module")
def rows(vs_tp) -> dict[str, list[dict]]:
    """BertModel and Llama (small hf: configs), with the Torch-Pruning Llama setting that finishes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"bert": vs_tp.compare("bert"), "llama": vs_tp.compare("llama", tp_settings=["llama-heads-kept"])}
    finally:
        torch.set_num_threads(threads)


def _row(rows: list[dict], tool: str, setting_start: str) -> dict:
    """The one row whose setting starts so (a zero-fill row only when the prefix names it)."""
    [row] = [r for r in rows if r["tool"] == tool and r["setting"].startswith(setting_start)
             and ("zero-fill" in setting_start or "zero-fill" not in r["setting"])]
    return row


@pytest.mark.parametrize("model", ["bert", "llama"])
def test_heads_and_mlp_rows_are_exact_and_keep_output_shapes(rows, model) -> None:  # noqa: ANN001
    row = _row(rows[model], "graphprune", "heads 50 % + MLP")
    assert row["status"] == "ok" and row["inexact"] == [] and row["exact"]
    assert row["masked_err"] < 1e-4
    assert row["shapes_kept"] and row["capture"] == "export"
    assert row["params_after"] < row["params_before"] and row["reduction"] > 1.3


def test_llama_hidden_width_removes_at_least_as_many_as_torch_pruning(rows, vs_tp) -> None:  # noqa: ANN001
    tp = _row(rows["llama"], "Torch-Pruning", "prune_llm.py, q/k/v")
    hidden = _row(rows["llama"], "graphprune", "heads + MLP + hidden")
    assert tp["status"] == "ok" and tp["runs"] and tp["shapes_kept"]
    assert hidden["params_after"] <= tp["params_after"]
    if vs_tp.statistics_option():
        assert hidden["exact"] and hidden["inexact"] == []
    else:  # without the statistics rewrite the RMSNorm change is reported, never silent
        assert not hidden["exact"] and any("mean" in reason for reason in hidden["inexact"])
        assert hidden["masked_err"] > 1e-3


def test_bert_hidden_width_is_refused_where_it_is_the_output(rows) -> None:  # noqa: ANN001
    tp = _row(rows["bert"], "Torch-Pruning", "prune_hf_bert")
    assert tp["runs"] and not tp["shapes_kept"]
    assert any("last_hidden_state" in c for c in tp["changed_outputs"])
    refused = _row(rows["bert"], "graphprune", "heads + MLP + hidden")
    assert refused["status"] == "refused" and "reaches the model output" in refused["error"]
    assert refused["params_after"] is None and refused["reduction"] is None


def test_bert_zero_fill_rows_remove_at_least_as_many_as_torch_pruning_and_are_exact(rows) -> None:  # noqa: ANN001
    """issue 13's floor on BertModel: with the output zero-filled, graphprune's hidden-width rows remove at
    least Torch-Pruning's parameters (which halves ``last_hidden_state``) and keep every output shape, exact."""
    tp = _row(rows["bert"], "Torch-Pruning", "prune_hf_bert")
    filled = [r for r in rows["bert"] if "outputs zero-fill" in r["setting"]]
    assert len(filled) == 2
    for row in filled:
        assert row["status"] == "ok" and row["shapes_kept"] and row["exact"] and row["inexact"] == []
        assert row["params_after"] <= tp["params_after"] and row["masked_err"] < 1e-4
    [every] = [r for r in filled if r["setting"].endswith("every output")]
    assert every["params_after"] < tp["params_after"]


def test_a_torch_pruning_setting_that_never_returns_is_a_timeout_row(monkeypatch) -> None:  # noqa: ANN001
    tp_hf = bench("_tp_hf")
    family, _, text = tp_hf.SETTINGS["bert"]
    monkeypatch.setitem(tp_hf.SETTINGS, "bert", (family, lambda tp, m, ids: time.sleep(30), text))
    start = time.perf_counter()
    pruned, record = tp_hf.run("bert", torch.nn.Linear(2, 2), torch.zeros(1, 2), timeout=0.2)
    assert pruned is None and record["status"] == "error" and "did not finish in 0.2 s" in record["error"]
    assert time.perf_counter() - start < 5


def test_the_json_and_the_table_hold_what_the_functions_return(rows, vs_tp, tmp_path) -> None:  # noqa: ANN001
    results = {"meta": {"quick": True, "large": False, "tp_timeout_s": 1.0, "statistics_option": False,
                        "torch": "t", "transformers": "x", "torch_pruning": "p", "threads": 1},
               "rows": rows["bert"] + rows["llama"]}
    path = tmp_path / "vs_tp.json"
    vs_tp.write_json(path, results)
    assert json.loads(path.read_text()) == json.loads(json.dumps(results))
    table = bench("_tp_table").render(json.loads(path.read_text()))
    for row in results["rows"]:
        assert f"{row['params_before']:,} → " in table
        if row["params_after"] is not None:
            assert f"{row['params_after']:,} | {row['reduction']:.2f}×" in table


def test_the_docs_table_is_the_committed_json_rendered(vs_tp) -> None:  # noqa: ANN001
    page = (REPO / "docs" / "transformers.md").read_text()
    in_page = page.split(vs_tp.TABLE_START, 1)[1].split(vs_tp.TABLE_END, 1)[0].strip()
    assert in_page == bench("_tp_table").render(json.loads(vs_tp.RESULTS.read_text())).strip()
