"""``--weights FILE``: every file form loads the same tensors into the model the spec builds, the pruned
model's kept weights are the file's (sliced by the report's ``kept``), and a file that does not fit is one
error line naming the mismatches (exit 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import models_zoo
from graphprune.cli import main
from graphprune.errors import InputError
from graphprune.weights import load_weights, read_state_dict

SPEC = "zoo:resnet8"
pytestmark = pytest.mark.usefixtures("single_thread")


def _trained_state() -> dict[str, torch.Tensor]:
    """resnet8's state dict with every tensor changed, so a file that was not loaded shows."""
    model, _ = models_zoo.load(SPEC)
    g = torch.Generator().manual_seed(1)
    return {k: (v + torch.randn(v.shape, generator=g) * 0.1 if v.is_floating_point() else v + 3)
            for k, v in model.state_dict().items()}


def _write(form: str, state: dict[str, torch.Tensor], path: Path) -> Path:
    if form == "state_dict":
        torch.save(state, path)
    elif form == "checkpoint":
        torch.save({"epoch": 3, "model": state, "optimizer": {"lr": 0.1}}, path)
    elif form == "timm":  # timm's train.py: DDP-prefixed keys, its args as a Namespace
        torch.save({"epoch": 3, "arch": "resnet8", "state_dict": {f"module.{k}": v for k, v in state.items()},
                    "args": argparse.Namespace(lr=0.1, model="resnet8"), "version": 2}, path)
    elif form == "safetensors":
        from safetensors.torch import save_file

        path = path.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize("form", ["state_dict", "checkpoint", "timm", "safetensors"])
def test_every_form_loads_the_same_tensors(tmp_path: Path, form: str) -> None:
    if form == "safetensors":
        pytest.importorskip("safetensors")
    state = _trained_state()
    path = _write(form, state, tmp_path / "w.pt")
    model, _ = models_zoo.load(SPEC, weights=str(path))
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_mismatch_is_one_line_naming_counts_and_names(tmp_path: Path) -> None:
    state = _trained_state()
    state.pop("fc.bias")
    state["head.weight"] = torch.zeros(3)
    state["fc.weight"] = torch.zeros(7, state["fc.weight"].shape[1])
    path = tmp_path / "w.pt"
    torch.save(state, path)
    model, _ = models_zoo.load(SPEC)
    with pytest.raises(InputError) as info:
        load_weights(model, path, SPEC)
    message = str(info.value)
    assert "\n" not in message
    assert "1 missing (fc.bias)" in message
    assert "1 unexpected (head.weight)" in message
    assert "1 shape mismatch (fc.weight [7, 64] in the file, [10, 64] in the model)" in message


def test_many_missing_names_the_first_few_and_counts(tmp_path: Path) -> None:
    state = {k: v for k, v in _trained_state().items() if not k.startswith("layers")}
    path = tmp_path / "w.pt"
    torch.save(state, path)
    model, _ = models_zoo.load(SPEC)
    with pytest.raises(InputError, match=r"\d+ missing \(layers\.[^,]+, [^,]+, [^,]+, \+\d+ more\)"):
        load_weights(model, path, SPEC)


def test_pickled_module_is_refused_without_running_it(tmp_path: Path) -> None:
    model, _ = models_zoo.load(SPEC)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(InputError, match="pickled Python objects.*save its state_dict"):
        read_state_dict(path)


def test_cli_mismatch_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _trained_state()
    state.pop("fc.bias")
    path = tmp_path / "w.pt"
    torch.save(state, path)
    assert main(["compile", SPEC, "--weights", str(path), "--report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphprune: error: --weights") and "1 missing (fc.bias)" in err[0]
    assert not (tmp_path / "r.json").exists()
    assert main(["compile", SPEC, "--weights", str(tmp_path / "nope.pt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_pruned_model_keeps_the_files_weights(tmp_path: Path) -> None:
    """The compiled module's tensors are the file's, index-selected by the report's kept indices."""
    state = _trained_state()
    weights, out, report = tmp_path / "w.pt", tmp_path / "m.pt", tmp_path / "r.json"
    _write("timm", state, weights)
    assert main(["compile", SPEC, "--weights", str(weights), "--sparsity", "0.5", "--out", str(out),
                 "--report", str(report), "-q"]) == 0
    kept = json.loads(report.read_text())["kept"]
    assert kept, "nothing was pruned: the test is vacuous"
    pruned = torch.load(out, weights_only=False).state_dict()
    for key, value in pruned.items():
        expected = state[key]
        for dim, index in kept.get(key, {}).items():
            expected = expected.index_select(int(dim), torch.tensor(index))
        assert torch.equal(value, expected), key
