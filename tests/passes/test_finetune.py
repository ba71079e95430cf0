"""The ``finetune`` pass: recovery after pruning (plain or distilled from the dense model), the accuracy it
measures at three points, masks kept, the user's model untouched, bit-for-bit resume and its refusals, and
its place in the schedule."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import graphprune
import models_zoo
from graphprune.cli import main
from graphprune.errors import InputError
from graphprune.plan import load_plan
from graphprune.scheduler import FixedPoint, schedule
from graphprune.training.checkpoint import CheckpointError
from graphprune.training.evaluate import evaluate
from models_zoo.data import load_dataset

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich honours COLUMNS: keep paths and table rows on one line whatever the runner's terminal says."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """zoo:resnet8 trained for 3 epochs on 8x8 digits (~97 % validation accuracy, about a second)."""
    model, inputs = models_zoo.load("zoo:resnet8", input_size=8)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for epoch in range(3):
        for x, y in load_dataset("digits", 64, 8, "train").epoch(epoch):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval(), inputs


def _plan(**finetune) -> dict:
    return {"sparsity": 0.5, "data": {"name": "digits"}, "finetune": {"progress": False, **finetune}}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("distill", [False, True])
def test_recovery_measures_three_accuracies_and_recovers(trained, distill: bool) -> None:
    model, inputs = trained
    before, flags = _state(model), [m.training for m in model.modules()]
    result = graphprune.compile(model, inputs, plan=_plan(epochs=1, distill=distill))
    record = result.report.artifacts["finetune"]
    acc = record["accuracy"]
    val = load_dataset("digits", 64, 8, "test")
    assert acc["dense"] == pytest.approx(evaluate(model, val)["acc"], abs=1e-6) and acc["dense"] > 0.9
    assert acc["pruned"] < acc["dense"] - 0.3, "50 % of every group removed: the pruned model must lose accuracy"
    assert acc["recovered"] > acc["pruned"] + 0.4
    assert acc["recovered"] == pytest.approx(evaluate(result.module, val)["acc"], abs=1e-6)
    assert record["measured_on"] == "validation" and record["examples"] == len(val.y)
    assert record["distill"] is distill and record["steps"] == record["steps_per_epoch"] == len(
        load_dataset("digits", 64, 8, "train"))
    for key, value in before.items():  # the user's model: neither its tensors nor its flags changed
        assert torch.equal(model.state_dict()[key], value), key
    assert [m.training for m in model.modules()] == flags


def _digits_steps(epochs: float) -> int:
    """Optimizer steps of ``epochs`` over the built-in digits training split (a run is
    ``round(epochs * steps_per_epoch)`` steps)."""
    from models_zoo.data import load_dataset

    return round(epochs * len(load_dataset(name="digits", image_size=8)))


def test_masks_stay_applied_while_training() -> None:
    model, inputs = models_zoo.load("zoo:resnet8", input_size=8)
    plan = {"prune": [{"structure": "irregular", "sparsity": 0.5}], "data": {"name": "digits"},
            "finetune": {"epochs": 0.5, "progress": False}}
    result = graphprune.compile(model, inputs, plan=plan)
    assert result.state.masks and result.report.artifacts["finetune"]["steps"] == _digits_steps(0.5)
    trained = 0
    for name, mask in result.state.masks.items():
        weight, dense = result.module.get_parameter(name), model.get_parameter(name)
        assert not weight[~mask].any(), f"{name}: a masked weight came back"
        trained += weight.shape == dense.shape and not torch.equal(weight[mask], dense[mask])
    assert trained >= len(result.state.masks) // 2, "the kept weights were not trained"


def test_optimizers_schedules_and_training_data_fallback() -> None:
    model, inputs = models_zoo.load("zoo:resnet8", input_size=8)
    g = torch.Generator().manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(40, 3, 8, 8, generator=g), torch.arange(40) % 10), batch_size=10)
    for optimizer, schedule_name in (("adam", "constant"), ("adamw", "cosine")):
        result = graphprune.compile(model, inputs, plan={"sparsity": 0.5, "finetune": {
            "epochs": 2, "optimizer": optimizer, "schedule": schedule_name, "progress": False, "log_every": 1}},
            data=data)
        record = result.report.artifacts["finetune"]
        assert record["measured_on"] == "training" and record["examples"] == 40 and record["steps"] == 8
        assert record["settings"]["lr"] == 1e-3
        lrs = [r["lr"] for r in record["epochs_log"]]  # after epoch 1, after epoch 2
        assert lrs == ([1e-3, 1e-3] if schedule_name == "constant" else [pytest.approx(5e-4), 0.0])
    with pytest.raises(InputError, match=r"finetune\.optimizer: expected one of sgd, adam, adamw, got 'rmsprop'"):
        graphprune.compile(model, inputs, plan={"sparsity": 0.5, "finetune": {"optimizer": "rmsprop"}}, data=data)
    with pytest.raises(InputError, match="finetune: no training data"):
        graphprune.compile(model, inputs, plan={"sparsity": 0.5, "finetune": {}})


class _Interrupt(BaseException):  # like a kill: no pass catches it
    pass


def _job(ckdir: Path, stop_at: int | None = None, **finetune):
    """Fine-tune a tiny CNN with dropout and BatchNorm on a shuffled loader, checkpointing every 3 steps;
    with ``stop_at`` the loss raises at that step (a killed run)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 3, 6, 6, generator=g)
    data = DataLoader(TensorDataset(x, torch.arange(48) % 4), batch_size=8, shuffle=True)
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += torch.is_grad_enabled()  # training steps only, not evaluation
        if stop_at is not None and calls["n"] == stop_at:
            raise _Interrupt
        return F.cross_entropy(out, target)

    options = {"epochs": 2, "optimizer": "adam", "distill": True, "distill_weight": 0.5, "checkpoint_dir": str(ckdir),
               "checkpoint_every": 3, "progress": False, "log_every": 2, "loss_fn": loss_fn, **finetune}
    return graphprune.compile(model, (x[:1],), plan={"sparsity": 0.5, "finetune": options}, data=data)


@pytest.mark.parametrize("distill", [True, "features"])
def test_interrupted_run_resumes_bit_for_bit(tmp_path: Path, distill: bool | str) -> None:
    reference = _job(tmp_path / "ref", distill=distill)
    with pytest.raises(_Interrupt):
        _job(tmp_path / "cut", stop_at=8, distill=distill)  # checkpoints at steps 3 and 6
    resumed = _job(tmp_path / "cut", resume=True, distill=distill)
    assert resumed.report.artifacts["finetune"]["resumed_from"]["step"] == 6
    for key, value in reference.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[key], value), key
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl").read_text()
    again = _job(tmp_path / "cut", resume=True, distill=distill)  # a finished run resumed trains nothing more
    assert again.report.artifacts["finetune"]["steps"] == reference.report.artifacts["finetune"]["steps"]
    assert torch.equal(again.module.state_dict()["4.weight"], reference.module.state_dict()["4.weight"])


def test_resume_and_fresh_runs_refuse_another_runs_directory(tmp_path: Path) -> None:
    with pytest.raises(_Interrupt):
        _job(tmp_path / "run", stop_at=5)
    with pytest.raises(CheckpointError, match=r"finetune\.lr is 0\.001 in the checkpoint but 0\.002 in this run"):
        _job(tmp_path / "run", resume=True, lr=0.002)
    with pytest.raises(CheckpointError, match="already holds a run"):
        _job(tmp_path / "run")
    assert _job(tmp_path / "run", overwrite=True).report.artifacts["finetune"]["resumed_from"] is None


def test_schedule_places_finetune_after_removal_and_purification_before_fuse_and_emit() -> None:
    plan = load_plan({"sparsity": 0.5, "admm": {}, "purify": {}, "finetune": {}, "emit": {"fuse": True,
                                                                                          "path": "m.pt2"}})
    names = [s.detect.name + "*" if isinstance(s, FixedPoint) else s.pass_.name for s in schedule(plan).steps]
    assert names.index("remove-channels") < names.index("purify") < names.index("remove-unused-paths*") \
        < names.index("finetune") < names.index("fuse") < names.index("emit")
    plan = load_plan({"score": "taylor", "sparsity": 0.5, "finetune": {}, "passes": {"measure-latency": {}}})
    names = [s.pass_.name for s in schedule(plan).steps]
    assert names[-3:] == ["remove-channels", "finetune", "measure-latency"]


def test_cli_bad_finetune_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "p.toml"
    plan.write_text("sparsity = 0.5\n[finetune]\nschedule = 'step'\n")
    assert main(["compile", "zoo:resnet8", "--plan", str(plan), "--data", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["graphprune: error: finetune.schedule: expected one of cosine, constant, got 'step'"]
    assert main(["compile", "zoo:resnet8", "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("graphprune: error: --epochs sets the recovery epochs: the plan has "
                                               "no [finetune] section")
    plan.write_text("sparsity = 0.5\n[finetune]\nepochs = 'two'\n")
    assert main(["compile", "zoo:resnet8", "--plan", str(plan), "--data", "digits"]) == 2
    assert "finetune.epochs: expected float, got 'two'" in capsys.readouterr().err


def test_cli_prints_accuracy_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan, report = tmp_path / "p.toml", tmp_path / "r.json"
    plan.write_text(f"sparsity = 0.5\n[finetune]\nepochs = 0.5\nprogress = false\ncheckpoint_dir = "
                    f"'{tmp_path / 'ck'}'\n")
    args = ["compile", "zoo:resnet8", "--input-size", "8", "--plan", str(plan), "--data", "digits", "--report",
            str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    acc = json.loads(report.read_text())["artifacts"]["finetune"]["accuracy"]
    assert "accuracy (validation, 450 examples)" in out
    for label, key in (("before pruning", "dense"), ("after pruning", "pruned"), ("after recovery", "recovered")):
        line = next(line for line in out.splitlines() if label in line)
        assert f"{acc[key]:.2%}" in line, line
    assert main(args) == 2  # the directory holds that run now
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert json.loads(report.read_text())["artifacts"]["finetune"]["resumed_from"]["step"] == _digits_steps(0.5)
    assert main([*args, "--epochs", "1", "--overwrite"]) == 0
    assert json.loads(report.read_text())["artifacts"]["finetune"]["steps"] == _digits_steps(1)


def test_user_model_on_another_device_is_not_moved() -> None:
    model, inputs = models_zoo.load("zoo:resnet8", input_size=8)
    teacher = copy.deepcopy(model)
    graphprune.compile(model, inputs, plan=_plan(epochs=0.2, distill=True, device="cpu"))
    assert all(p.device.type == "cpu" for p in model.parameters())
    for (name, a), b in zip(model.state_dict().items(), teacher.state_dict().values()):
        assert torch.equal(a, b), name
