"""A training pass's plan options are declared once, by its run configuration: ``admm`` takes
``AdmmConfig``'s fields and ``finetune`` ``RecoveryConfig``'s, with the same names, types and defaults
(``admm.sparsity`` alone differs: unset, the plan's rules give each group its target)."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from graphprune.admm.config import AdmmConfig
from graphprune.errors import PlanError
from graphprune.passes import Pass, configure, options_of
from graphprune.training.recovery import RecoveryConfig
from passes import Admm, Finetune

ROOT = Path(__file__).resolve().parents[2]
CASES = [(Admm, AdmmConfig, "passes/admm.py", {"sparsity": None}), (Finetune, RecoveryConfig, "passes/finetune.py", {})]


@pytest.mark.parametrize(("pass_cls", "config", "path", "own"), CASES)
def test_the_pass_declares_none_of_its_configs_fields_again(pass_cls, config, path, own) -> None:
    tree = ast.parse((ROOT / path).read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == pass_cls.__name__).body
    declared = {n.target.id for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    names = [f.name for f in dataclasses.fields(config)]
    assert not declared & set(names), f"{path} repeats {sorted(declared & set(names))}"
    defaults = pass_cls()
    assert [f.name for f in dataclasses.fields(pass_cls)][:len(names)] == names  # same options, same order
    for f in dataclasses.fields(config):
        expected = own.get(f.name, f.default)
        assert getattr(defaults, f.name) == expected, f"{pass_cls.name}.{f.name}"


def test_a_config_default_is_the_option_default_and_its_type_is_checked() -> None:
    @dataclass(frozen=True)
    class Config:
        rate: float = 0.25
        every: int | str = "1 epoch"
        mode: str | None = None

    @dataclass(frozen=True)
    class Trains(Pass, options_of(Config, mode=(str | None, "x"))):
        pass

    assert (Trains().rate, Trains().every, Trains().mode) == (0.25, "1 epoch", "x")
    assert configure(Trains(), {"rate": 1, "every": 3}, "passes.t").rate == 1.0
    with pytest.raises(PlanError, match="passes.t.rate: expected float"):
        configure(Trains(), {"rate": "fast"}, "passes.t")
