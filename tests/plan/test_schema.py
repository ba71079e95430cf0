"""Malformed plans: each is rejected with the exact key path (and file line where the format has one),
exit code 2 from the CLI, and no output file written."""

# ruff: noqa: E501  (one malformed plan per line reads best as a table)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphprune.cli import main

SPEC = "zoo:resnet20"
RULE = '[[prune]]\nselect = "*"\n'

# (plan text, fragment that must appear in the error line: location + key path + what was found)
MALFORMED_TOML = {
    "unknown top-level key": ("sparsty = 0.5\n", "plan.toml:1: sparsty: unknown key 'sparsty'"),
    "unknown rule key": (RULE + "sparsity = 0.5\nstructur = 'channel'\n", "plan.toml:4: prune[0].structur: unknown key"),
    "sparsity out of range": (RULE + "sparsity = 1.5\n", "plan.toml:3: prune[0].sparsity: expected a number in [0, 1), got 1.5"),
    "sparsity wrong type": (RULE + "sparsity = 'half'\n", "plan.toml:3: prune[0].sparsity: expected a number"),
    "sparsity and budget": (RULE + "sparsity = 0.5\nbudget = { macs = 0.5 }\n",
                            "plan.toml:1: prune[0]: expected exactly one of 'sparsity' or 'budget', found both"),
    "neither sparsity nor budget": (RULE, "plan.toml:1: prune[0]: expected exactly one of 'sparsity' or 'budget', found neither"),
    "unknown budget metric": (RULE + "budget = { flops = 0.5 }\n", "plan.toml:3: prune[0].budget.flops: unknown key 'flops'"),
    "budget ratio zero": (RULE + "budget = { macs = 0 }\n", "plan.toml:3: prune[0].budget.macs: expected a number in (0, 1]"),
    "two budgets": (RULE + "budget = { macs = 0.5 }\n" + RULE + "budget = { params = 0.5 }\n",
                    "plan.toml:6: prune[1].budget: only one rule may carry a budget"),
    "unknown structure": (RULE + "sparsity = 0.5\nstructure = 'rows'\n", "plan.toml:4: prune[0].structure: expected one of"),
    "bad N:M": (RULE + "sparsity = 0.5\nstructure = '4:2'\n", "plan.toml:4: prune[0].structure: expected"),
    "bad scope": (RULE + "sparsity = 0.5\n[allocate]\nscope = 'everywhere'\n", "plan.toml:5: allocate.scope: expected one of 'local', 'global'"),
    "round_to zero": (RULE + "sparsity = 0.5\n[allocate]\nround_to = 0\n", "plan.toml:5: allocate.round_to: expected a positive integer, got 0"),
    "bad emit format": (RULE + "sparsity = 0.5\n[emit]\nformat = 'tflite'\n", "plan.toml:5: emit.format: expected one of"),
    "bad input shape": ("[model]\ninput_shape = '224'\n" + RULE + "sparsity = 0.5\n", "plan.toml:2: model.input_shape: expected a list"),
    "unknown criterion": (RULE + "sparsity = 0.5\nscore = 'l3'\n", "plan.toml:4: prune[0].score: unknown criterion 'l3'"),
    "unknown pass option": (RULE + "sparsity = 0.5\n[passes.score-magnitude]\nq = 3\n",
                            "plan.toml:5: passes.score-magnitude.q: unknown option for pass 'score-magnitude'"),
    "pass option wrong type": (RULE + "sparsity = 0.5\n[passes.score-magnitude]\np = 'two'\n",
                               "plan.toml:5: passes.score-magnitude.p: expected int, got 'two'"),
    "unknown pipeline pass": ("pipeline = ['trace', 'scroe-magnitude']\n" + RULE + "sparsity = 0.5\n",
                              "plan.toml:1: pipeline[1]: unknown pass 'scroe-magnitude'"),
    "pipeline missing requirement": ("pipeline = ['trace', 'allocate', 'remove-channels']\n" + RULE + "sparsity = 0.5\n",
                                     "plan.toml:1: pipeline[1]: pass 'allocate' requires"),
    "pipeline misses goal": ("pipeline = ['trace', 'canonicalize', 'analyze-channels']\n" + RULE + "sparsity = 0.5\n",
                             "plan.toml:1: pipeline: does not reach goal 'removed'"),
    "bad regex": ('[[prune]]\nselect = "re:layers[\"\nsparsity = 0.5\n', "plan.toml:2: prune[0].select: invalid regular expression"),
    "selector matches nothing": ('[[prune]]\nselect = "layer9.*"\nsparsity = 0.5\n',
                                 "plan.toml:2: prune[0].select: selector 'layer9.*' matches no module"),
    "conflicting rules": ('[[prune]]\nselect = "layers.*"\nsparsity = 0.5\n[[prune]]\nselect = "layers.?*"\nsparsity = 0.3\n',
                          "plan.toml:4: prune[1]: conflicts with prune[0]"),
    "structure the selection cannot carry": ('[[prune]]\nselect = "fc"\nsparsity = 0.5\n',
                                             "plan.toml:1: prune[0]: structure 'channel' cannot be carried by the selection"),
    "budget that cannot be met": (RULE + "budget = { macs = 0.001 }\n",
                                  "plan.toml:3: prune[0].budget.macs: 0.001 cannot be met"),
}


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("case", sorted(MALFORMED_TOML))
def test_malformed_plan_names_key_path_and_writes_nothing(case: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    text, fragment = MALFORMED_TOML[case]
    plan, out, report = tmp_path / "plan.toml", tmp_path / "m.pt", tmp_path / "r.json"
    plan.write_text(text)
    assert main(["compile", SPEC, "--plan", str(plan), "--out", str(out), "--report", str(report)]) == 2
    line = _error_line(capsys)
    assert fragment in line.replace(str(tmp_path) + "/", ""), line
    assert not out.exists() and not report.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["plan.toml"]  # no temporary left behind either


def test_yaml_plan_errors_carry_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("prune:\n  - select: '*'\n    sparsity: 0.5\n  - select: 'layers.0.*'\n    sparsity: 2\n")
    assert main(["plan", str(plan)]) == 2
    assert "plan.yaml:5: prune[1].sparsity: expected a number in [0, 1), got 2" in _error_line(capsys)


def test_json_plan_errors_carry_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"prune": [{"select": "*", "sparsity": 0.5}], "emit": {"fuse": "yes"}}, indent=1))
    assert main(["plan", str(plan)]) == 2
    line = _error_line(capsys)
    assert "emit.fuse: expected true or false, got 'yes'" in line and "plan.json:" in line


def test_invalid_yaml_syntax_names_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("prune:\n  - select: '*'\n    sparsity: [0.5\n")
    assert main(["plan", str(plan)]) == 2
    line = _error_line(capsys)
    assert "plan.yaml:4: not valid YAML" in line, line


def test_dict_plan_errors_name_key_path() -> None:
    import torch

    import graphprune
    from graphprune.errors import PlanError

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    with pytest.raises(PlanError, match=r"^plan: prune\[0\]\.budget\.params: expected a number in \(0, 1\]"):
        graphprune.compile(model, torch.randn(1, 3, 8, 8), plan={"prune": [{"budget": {"params": 1.5}}]})
