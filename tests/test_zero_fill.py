"""``[allocate] outputs = "zero-fill"`` (graphprune.zero_fill): channels that reach an output leaf may be
removed; the pruned graph scatters the kept channels back into zeros of the leaf's width, so every output
keeps its shape and equals the masked dense model (whose zeroed LayerNorm affine makes those channels zero
there too). Where the masked model is not provably zero at a removed output channel the report says so.
The default (``"keep"``) freezes them as before; the module form refuses a zero-filled output in one line."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

import graphprune
from graphprune.errors import InputError, PlanError
from graphprune.testing import masked_equivalence_error, masked_model
from tests.helpers import calibrate, make_nontrivial

pytestmark = pytest.mark.usefixtures("single_thread")

Pair = namedtuple("Pair", ["h", "y"])
ZERO_FILL = {"prune": [{"select": "*", "sparsity": 0.5}], "allocate": {"outputs": "zero-fill"}}


class Stream(nn.Module):
    """A 16-wide stream whose every channel reaches the output through a final LayerNorm (with a bias:
    only the masked LayerNorm's zeroed bias makes a removed channel zero there), returned as ``form``."""

    def __init__(self, form: str = "dict") -> None:
        super().__init__()
        self.form = form
        self.fc1, self.fc2, self.ln = nn.Linear(6, 16), nn.Linear(16, 16), nn.LayerNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        h = self.fc1(x)
        h = self.ln(h + self.fc2(torch.relu(h)))
        y = self.head(h)
        return {"tensor": lambda: h, "tuple": lambda: (h, y), "dict": lambda: {"h": h, "y": y},
                "namedtuple": lambda: Pair(h, y)}[self.form]()


def _model(form: str = "dict") -> nn.Module:
    torch.manual_seed(0)
    return calibrate(make_nontrivial(Stream(form).eval()), (torch.randn(4, 6),))


def _h(out):  # noqa: ANN001, ANN202
    return out if isinstance(out, torch.Tensor) else out["h"] if isinstance(out, dict) else out[0]


@pytest.mark.parametrize("capture", ["fx", "export"])
@pytest.mark.parametrize("form", ["tensor", "tuple", "dict", "namedtuple"])
def test_zero_fill_prunes_an_output_width_and_equals_the_masked_model(form: str, capture: str) -> None:
    model, x = _model(form), torch.randn(4, 6)
    kept = graphprune.compile(model, (x,), sparsity=0.5, capture=capture)
    result = graphprune.compile(model, (x,), ZERO_FILL, capture=capture)
    assert "ln.weight" not in kept.report.kept  # "keep" (the default): the output width is frozen
    assert len(result.report.kept["ln.weight"][0]) == 8 and result.report.params_after < kept.report.params_after
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5
    assert [i["reason"] for i in result.report.inexact if "output" in i["reason"]] == []
    with torch.no_grad():
        got, want = _h(result.module(x)), _h(masked_model(model, result.report.kept)(x))
    removed = sorted(set(range(16)) - set(result.report.kept["ln.weight"][0]))
    assert got.shape == (4, 16) and torch.equal(got[:, removed], torch.zeros(4, 8))
    assert torch.equal(want[:, removed], torch.zeros(4, 8))  # the masked LayerNorm's zeroed affine
    filled = {"tensor": ["output"], "tuple": ["0", "1"], "namedtuple": ["0", "1"], "dict": ["h", "y"]}[form]
    assert result.report.artifacts["outputs"]["zero_filled"] == filled  # the head's logits too: "*" selects it


def test_per_leaf_outputs_zero_fill_only_the_leaves_named() -> None:
    model, x = _model("tuple"), torch.randn(4, 6)
    plan = {"prune": [{"select": "*", "sparsity": 0.5}], "allocate": {"outputs": {"0": "zero-fill", "1": "keep"}}}
    result = graphprune.compile(model, (x,), plan)
    assert len(result.report.kept["ln.weight"][0]) == 8 and 0 not in result.report.kept["head.weight"]
    assert result.report.artifacts["outputs"]["zero_filled"] == ["0"]
    assert set(result.module.state_dict()) == set(model.state_dict())  # the fill's index is not a weight
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5
    with pytest.raises(PlanError, match=r"allocate\.outputs: the model's output has no leaf 'logits' \(its "
                                        r"leaves: 0, 1\)"):
        graphprune.compile(model, (x,), {**plan, "allocate": {"outputs": {"logits": "zero-fill"}}})


@pytest.mark.parametrize(("plan", "error"), [({"outputs": "zero"}, InputError),
                                             ({"allocate": {"outputs": {"h": "fill"}}}, PlanError)])
def test_bad_outputs_value_is_one_line(plan: dict, error: type) -> None:
    with pytest.raises(error, match="outputs: expected 'keep', 'zero-fill', or a table of output leaf name"):
        graphprune.compile(nn.Linear(2, 2), torch.randn(1, 2), **plan) if error is InputError else \
            graphprune.compile(nn.Linear(2, 2), torch.randn(1, 2), plan)


class NotZero(nn.Module):
    """A removed channel the masked dense model does not zero: sigmoid(0) = 0.5, or a final LayerNorm
    without affine, where a zeroed channel reads -mean / std."""

    def __init__(self, last: str) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 16)
        self.last = torch.sigmoid if last == "sigmoid" else nn.LayerNorm(16, elementwise_affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.fc2(torch.relu(self.fc1(x))))


@pytest.mark.parametrize("last", ["sigmoid", "layer_norm"])
def test_an_output_the_masked_model_does_not_zero_is_reported_inexact(last: str) -> None:
    torch.manual_seed(0)
    model, x = calibrate(make_nontrivial(NotZero(last).eval()), (torch.randn(4, 6),)), torch.randn(4, 6)
    result = graphprune.compile(model, (x,), {"prune": [{"select": "fc2", "sparsity": 0.5}],
                                              "allocate": {"outputs": "zero-fill"}})
    [entry] = [e for e in result.report.inexact if "zero-filled" in e["reason"]]
    assert entry["reason"].startswith("output 'output' zero-filled at channels the masked dense model does not "
                                      "provably zero") and sum(entry["removed_channels"].values()) == 8
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) > 0.1  # the report is true


def test_the_module_form_refuses_a_zero_filled_output_in_one_line() -> None:
    model, x = _model(), torch.randn(4, 6)
    result = graphprune.compile(model, (x,), ZERO_FILL)
    match = r"^apply: outputs h, y are zero-filled \(outputs = 'zero-fill'\): Stream's own forward returns the kept"
    with pytest.raises(InputError, match=match):
        result.as_module()
    with pytest.raises(InputError, match=match):
        graphprune.apply(model, result.report.to_dict(), (x,), form="module")


def test_apply_replays_the_zero_fill_and_exports_keep_it(tmp_path) -> None:  # noqa: ANN001
    from graphprune.export import emit

    model, x = _model(), torch.randn(4, 6)
    result = graphprune.compile(model, (x,), ZERO_FILL)
    replayed = graphprune.apply(model, result.report.to_dict(), (x,))
    with torch.no_grad():
        want = result.module(x)
        assert torch.equal(replayed(x)["h"], want["h"])
    for suffix, tol in ((".pt2", 1e-6), (".onnx", 1e-4), (".py", 1e-6)):
        record = emit(result.module, (x,), tmp_path / f"m{suffix}")
        assert record.parity_max_abs <= tol, suffix
    program = torch.export.load(str(tmp_path / "m.pt2"))
    with torch.no_grad():
        assert torch.allclose(program.module()(x)["h"], want["h"], atol=1e-6)


def test_a_second_round_prunes_a_zero_filled_output_again() -> None:
    model, x = _model(), torch.randn(4, 6)
    first = graphprune.compile(model, (x,), ZERO_FILL)
    second = graphprune.compile(first.module, (x,), ZERO_FILL)
    assert len(second.report.kept["ln.weight"][0]) == 4
    masked_first = masked_model(first.module, second.report.kept)
    with torch.no_grad():
        got, want = second.module(x), masked_first(x)
    assert got["h"].shape == (4, 16) and torch.allclose(got["h"], want["h"], atol=1e-5)
    assert int((got["h"].abs().sum(0) > 0).sum()) == 4


def test_bert_model_hidden_width_with_zero_fill_beats_torch_pruning_and_is_exact() -> None:
    """issue 13's floor on BertModel: Torch-Pruning's 2.84x (docs/transformers.md) halves
    ``last_hidden_state``; zero-filled hidden-width pruning removes more and keeps every output shape."""
    pytest.importorskip("transformers")
    import models_zoo

    model, inputs = models_zoo.load("hf:bert")
    plan = {"prune": [{"select": ["*.query", "*.key", "*.value"], "structure": "heads", "sparsity": 0.5},
                      {"select": "*.intermediate.dense", "sparsity": 0.5}, {"select": "*", "sparsity": 0.5}],
            "allocate": {"statistics": "exact", "outputs": "zero-fill"}}
    result = graphprune.compile(model, inputs, plan)
    report = result.report
    assert report.params_before / report.params_after >= 2.84
    assert report.inexact == [] and report.artifacts["trace"]["capture"] == "export"
    err = masked_equivalence_error(model, result.module, report.kept, inputs,
                                   kwargs=report.artifacts["trace"].get("constants") or {})
    assert err < 1e-4
    assert report.artifacts["outputs"]["zero_filled"] == ["last_hidden_state", "pooler_output"]
    with torch.no_grad():
        assert result.module(*inputs)["last_hidden_state"].shape == model(*inputs)["last_hidden_state"].shape


def test_cli_outputs_flag_sets_the_mode(tmp_path) -> None:  # noqa: ANN001
    import json

    from graphprune.cli import main

    reports = {}
    for flag in ([], ["--outputs", "zero-fill"]):
        path = tmp_path / f"r{len(flag)}.json"
        assert main(["compile", "zoo:resnet8", *flag, "--report", str(path), "-q"]) == 0
        reports[bool(flag)] = json.loads(path.read_text())
    assert reports[False]["options"]["outputs"] == "keep" and "0" not in reports[False]["kept"].get("fc.weight", {})
    filled = reports[True]
    assert filled["options"]["outputs"] == "zero-fill" and filled["artifacts"]["outputs"]["zero_filled"] == ["output"]
    assert len(filled["kept"]["fc.weight"]["0"]) < 10 and filled["params_after"] < reports[False]["params_after"]
