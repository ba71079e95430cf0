"""``graphprune.apply``: a saved report's ``kept`` applied to a fresh model of the same architecture gives
the compiled module's function (exactly, with the same weights), also after several removal rounds and
after recovery training; another architecture is refused by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import graphprune
import models_zoo
from graphprune.cli import main
from graphprune.errors import InputError
from tests.test_loading import DOC

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("spec", ["zoo:resnet20", "zoo:densenet_tiny", "zoo:shufflenet_tiny", "zoo:vit_tiny"])
def test_apply_reproduces_the_compiled_module(tmp_path: Path, spec: str) -> None:
    model, inputs = models_zoo.load(spec)
    result = graphprune.compile(model, inputs, plan="macs-50-global")
    path = tmp_path / "r.json"
    path.write_text(result.report.to_json())
    fresh, _ = models_zoo.load(spec)  # the same seeded weights
    pruned = graphprune.apply(fresh, path)
    x = torch.randn(3, *inputs[0].shape[1:])
    with torch.no_grad():
        assert torch.equal(pruned(x), result.module(x))
    assert {k: v.shape for k, v in pruned.state_dict().items()} == \
        {k: v.shape for k, v in result.module.state_dict().items()}
    assert all(not p.is_set_to(q) for p, q in zip(pruned.parameters(), fresh.parameters()))


def test_apply_after_rounds_and_training_with_the_trained_weights() -> None:
    """Channel removal, then masks that kill whole channels (the unused-path fixed point removes them in a
    second round), then recovery: kept composes over the rounds, and with the recovered weights loaded the
    replayed module computes the compiled one."""
    model, inputs = models_zoo.load("zoo:resnet8", input_size=8)
    plan = {"prune": [{"select": "layers.0.*", "sparsity": 0.5}, {"structure": "irregular", "sparsity": 0.9}],
            "data": {"name": "digits"}, "finetune": {"epochs": 0.2, "progress": False}}
    result = graphprune.compile(model, inputs, plan=plan)
    assert result.report.passes.count("remove-channels") >= 2
    fresh, _ = models_zoo.load("zoo:resnet8", input_size=8)
    pruned = graphprune.apply(fresh, result.report)
    masks = {k for k in result.module.state_dict() if k.endswith(".weight_mask")}
    assert masks, "the plan left no masks: the test would not cover them"
    pruned.load_state_dict({k: v for k, v in result.module.state_dict().items() if k not in masks})
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(pruned(x), result.module(x), atol=1e-6)


def test_apply_refuses_another_architecture(tmp_path: Path) -> None:
    model, inputs = models_zoo.load("zoo:resnet20")
    report = graphprune.compile(model, inputs, sparsity=0.5).report.to_dict()
    other, _ = models_zoo.load("zoo:resnet56")
    with pytest.raises(InputError, match="for a model with 2[0-9,]+ parameters, this one has 8[0-9,]+"):
        graphprune.apply(other, report)
    report["params_before"] = None  # past the cheap check: the channel dims themselves differ
    with pytest.raises(InputError, match="not the same architecture"):
        graphprune.apply(other, report)
    with pytest.raises(InputError, match="does not exist"):
        graphprune.apply(model, tmp_path / "none.json")
    with pytest.raises(InputError, match="form 'mine' is not supported yet"):
        graphprune.apply(model, report, form="mine")


def test_documented_apply_snippet_on_a_cli_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/loading.md's ``apply`` block, on a report and weights the CLI wrote for torchvision:resnet18."""
    import torchvision

    torch.manual_seed(3)
    dense = torchvision.models.resnet18(weights=None).eval()
    torch.save(dense.state_dict(), tmp_path / "w.pt")
    assert main(["compile", "torchvision:resnet18", "--input-size", "32", "--weights", str(tmp_path / "w.pt"),
                 "--plan", "macs-50-global", "--out", str(tmp_path / "r.pt"), "--report", str(tmp_path / "r.json"),
                 "-q"]) == 0
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
                 if b.startswith("# apply"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "docs/loading.md", "exec"), namespace)  # noqa: S102
    compiled = graphprune.load(tmp_path / "r.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(namespace["pruned"](x), compiled(x))
    assert json.loads((tmp_path / "r.json").read_text())["macs_reduction"] > 1.9
