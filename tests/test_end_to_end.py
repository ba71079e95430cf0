"""A real user's model and data, end to end: an ImageFolder of PNGs (the bundled digits), a torchvision
resnet18 trained briefly and saved as a state_dict, then

    graphprune compile torchvision:resnet18 --weights w.pt --data imagefolder:DIR --plan finetune-50
        --out r.pt2 --report r.json   (+ --input-size 16 --epochs 1 for speed)

reports the accuracy before pruning, after the prune and after recovery; the numbers are those of the
models they describe (the checkpoint, its kept weights sliced by ``report.kept``, the written file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import graphprune
import models_zoo
from graphprune.cli import main
from graphprune.training.evaluate import evaluate
from graphprune.training.spec import recalibrate_batchnorm
from models_zoo.userdata import load_data
from tests.imagefolder import write_digits

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich honours COLUMNS: keep paths and table rows on one line whatever the runner's terminal says."""
    monkeypatch.setenv("COLUMNS", "200")
SPEC, SIZE = "torchvision:resnet18", 16


def _data(root: Path, model: torch.nn.Module, inputs: tuple):
    """The batches the CLI will see: the same preprocessing, split and batch size."""
    return load_data({"name": f"imagefolder:{root}"}, model, inputs)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(image folder, w.pt): resnet18 (random init, 1000 classes) trained for 20 Adam steps on the folder's
    training split, its BatchNorm statistics then recomputed (92.5 % validation accuracy; a few seconds)."""
    root = write_digits(tmp_path_factory.mktemp("digits"), per_class=40)
    model, inputs = models_zoo.load(SPEC, input_size=SIZE)
    data = load_data({"name": f"imagefolder:{root}", "batch_size": 32}, model, inputs)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    batches = (batch for epoch in range(10) for batch in data.train.epoch(epoch))
    for _ in range(20):
        x, y = next(batches)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    recalibrate_batchnorm(model, data.train, 4, torch.device("cpu"))
    weights = root.parent / "w.pt"
    torch.save(model.eval().state_dict(), weights)
    return root, weights


def test_user_checkpoint_and_image_folder_end_to_end(checkpoint: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root, weights = checkpoint
    out, report_path = tmp_path / "r.pt2", tmp_path / "r.json"
    rc = main(["compile", SPEC, "--weights", str(weights), "--data", f"imagefolder:{root}", "--plan", "finetune-50",
               "--out", str(out), "--report", str(report_path), "--input-size", str(SIZE), "--epochs", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(report_path.read_text())
    record = report["artifacts"]["finetune"]
    acc = record["accuracy"]
    assert record["distill"] is True and record["measured_on"] == "validation" and record["examples"] == 40
    assert report["artifacts"]["data"]["preprocessing"]["from"].startswith("default")
    assert report["budget"]["within_tolerance"]

    # printed: every accuracy, and every file written
    for label, key in (("before pruning", "dense"), ("after pruning", "pruned"), ("after recovery", "recovered")):
        line = next(line for line in captured.out.splitlines() if label in line)
        assert f"{acc[key]:.2%}" in line
    assert f"wrote model: {out}" in captured.out and f"wrote report: {report_path}" in captured.out

    dense, inputs = models_zoo.load(SPEC, input_size=SIZE, weights=str(weights))
    val = _data(root, dense, inputs).val
    # before pruning: the checkpoint itself
    assert acc["dense"] == pytest.approx(evaluate(dense, val)["acc"], abs=1e-9)
    assert acc["dense"] >= 0.5, "the briefly trained checkpoint should be far above chance (10 %)"

    # after pruning: the checkpoint's own weights, sliced by report.kept
    fresh, _ = models_zoo.load(SPEC, input_size=SIZE, weights=str(weights))
    pruned = graphprune.apply(fresh, report_path)
    checkpoint_state = torch.load(weights)
    assert report["kept"], "nothing pruned"
    for key, value in pruned.state_dict().items():
        expected = checkpoint_state[key]
        for dim, index in report["kept"].get(key, {}).items():
            expected = expected.index_select(int(dim), torch.tensor(index))
        assert torch.equal(value, expected), key
    assert acc["pruned"] == pytest.approx(evaluate(pruned, val)["acc"], abs=1e-9)

    # after recovery: the written file is the recovered model
    recovered = graphprune.load(out)
    assert acc["recovered"] == pytest.approx(evaluate(recovered, val)["acc"], abs=1e-9)
    assert acc["recovered"] >= acc["pruned"] + 0.2, acc  # measured: 0.925 dense, 0.10 pruned, 0.50 recovered
