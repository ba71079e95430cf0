"""ADMM checkpoint directories and resume checks (issue 11, defects 7 and 8).

A fresh run never writes into a directory holding another run (refused; ``overwrite`` clears it first);
a checkpoint is replaced atomically; a resume with another plan, model, input size or dataset is refused
with one short line naming the first difference; a resume says where it continues from (stderr and the
report's ADMM artifact) and ends where the uninterrupted run ends; ``update_every`` takes a number of
steps from a plan, as docs/admm.md says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from graphprune.admm import AdmmConfig, prune
from graphprune.cli import main
from graphprune.errors import InputError
from graphprune.training import CheckpointError
from graphprune.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")
OPTIONS = dict(iterations=2, update_every="2 steps", retrain_epochs=0, recalibrate_bn=0, checkpoint_every="2 steps",
               progress=False)


def cnn(width: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def batches(n: int = 64, size: int = 6, seed: int = 1, batch: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def train(ckdir: Path | None, model: nn.Module | None = None, data: list | None = None, **options):
    data = data if data is not None else batches()
    return prune(model if model is not None else cnn(), (data[0][0][:1],), data, sparsity=0.5,
                 checkpoint_dir=None if ckdir is None else str(ckdir), **{**OPTIONS, **options})


def run_files(ckdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(ckdir.iterdir())}


# ------------------------------------------------------------------------ defect 7: the directory


def test_fresh_run_refuses_a_directory_that_holds_a_run(tmp_path: Path):
    train(tmp_path)
    before = run_files(tmp_path)
    with pytest.raises(CheckpointError) as err:
        train(tmp_path, model=cnn(16))
    message = str(err.value)
    assert message.startswith(f"checkpoint_dir {tmp_path} already holds a run (checkpoint.pt, metrics.jsonl)")
    assert "--resume" in message and "another checkpoint_dir" in message and "--overwrite" in message
    assert "\n" not in message
    assert run_files(tmp_path) == before  # neither file touched


def test_overwrite_clears_the_old_run_before_starting(tmp_path: Path):
    train(tmp_path / "old", model=cnn(16), rho=0.05)
    train(tmp_path / "old", overwrite=True)
    train(tmp_path / "new")
    old, new = (tmp_path / "old" / "metrics.jsonl").read_text(), (tmp_path / "new" / "metrics.jsonl").read_text()
    assert old == new  # nothing of the first run's log is left
    assert load_checkpoint(tmp_path / "old" / "checkpoint.pt")["identity"]["parameters"][0][2] == [8, 3, 3, 3]


def test_resume_without_a_checkpoint_starts_afresh_and_drops_a_stale_log(tmp_path: Path):
    (tmp_path / "metrics.jsonl").write_text('{"event": "step", "step": 3}\n')  # killed before its first checkpoint
    train(tmp_path, resume=True)
    train(tmp_path / "clean")
    assert (tmp_path / "metrics.jsonl").read_text() == (tmp_path / "clean" / "metrics.jsonl").read_text()


def test_resume_and_overwrite_exclude_each_other():
    with pytest.raises(InputError, match="resume and overwrite exclude each other"):
        AdmmConfig(resume=True, overwrite=True)


def test_an_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def killed_mid_write(obj, f, *args, **kwargs):
        with open(f, "wb") if isinstance(f, (str, Path)) else f as out:
            out.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left behind


# ---------------------------------------------------------------------------- defect 8: resume


@pytest.mark.parametrize("change,difference", [
    ({"data": batches(size=8)}, "example input 0 is float32[1, 3, 6, 6] in the checkpoint but "
                                "float32[1, 3, 8, 8] in this run"),
    ({"model": cnn(16)}, "parameter '0.weight' has shape [8, 3, 3, 3] in the checkpoint but [16, 3, 3, 3] "
                         "in this model"),
    ({"data": batches(seed=2)}, "training data: the first batch's values differ from the checkpoint's"),
    ({"data": batches(n=96)}, "training data: size is 4 in the checkpoint but 6 in this run"),
    ({"rho": 0.5}, "admm.rho is 0.03 in the checkpoint but 0.5 in this run"),
], ids=["input-size", "model", "dataset", "dataset-size", "setting"])
def test_resume_of_another_run_names_the_first_difference(tmp_path: Path, change, difference):
    train(tmp_path)
    before = run_files(tmp_path)
    with pytest.raises(CheckpointError) as err:
        train(tmp_path, resume=True, **change)
    message = str(err.value)
    assert message.startswith(f"cannot resume from {tmp_path / 'checkpoint.pt'}: {difference}")
    assert "\n" not in message and len(message) < 300, message
    assert run_files(tmp_path) == before


class Stop(KeyboardInterrupt):
    """Stands in for a kill: not an Exception, so nothing on the way out wraps it."""


def test_resume_says_where_it_continues_and_ends_like_the_uninterrupted_run(tmp_path: Path, capsys):
    def stop_at_3(info):
        if info.step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(tmp_path, on_step=stop_at_3)  # checkpoints at step 2
    capsys.readouterr()
    resumed = train(tmp_path, resume=True, progress=True)
    err = capsys.readouterr().err
    assert f"admm: resuming from step 2 (epoch 0.5) of {tmp_path}\n" in err
    assert resumed.report.artifacts["admm"]["resumed_from"] == {
        "step": 2, "epoch": 0.5, "checkpoint": str(tmp_path / "checkpoint.pt")}
    reference = train(tmp_path / "reference")
    assert reference.report.artifacts["admm"]["resumed_from"] is None
    for name, tensor in reference.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[name], tensor), name


@pytest.mark.parametrize("period,steps", [(3, [3, 6]), ("3 steps", [3, 6]), ("0.5 epoch", [2, 4])])
def test_update_every_takes_steps_from_a_plan(period, steps):
    result = train(None, update_every=period)  # through the plan: [admm] update_every = 3
    assert [u["step"] for u in result.report.artifacts["admm"]["updates"]] == steps


def test_plan_file_update_every_in_steps_and_cli_overwrite(tmp_path: Path, capsys):
    """The CLI: ``update_every = 10`` in a plan file runs; a second fresh run into the directory is one error
    line with exit 2; ``--overwrite`` replaces the run; ``--resume`` at another input size is refused."""
    ckdir = tmp_path / "run"
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[prune]]\nselect = "*"\nsparsity = 0.5\n[admm]\niterations = 1\nupdate_every = 10\n'
                    f'retrain_epochs = 0\nrecalibrate_bn = 0\nprogress = false\ncheckpoint_dir = "{ckdir}"\n'
                    f'[data]\nname = "digits"\n')
    args = ["compile", "zoo:small_cnn", "--input-size", "8", "--plan", str(plan), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    log = (ckdir / "metrics.jsonl").read_text()
    assert [int(s) for s in re.findall(r'"event": "update", "step": (\d+)', log)] == [10]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"graphprune: error: checkpoint_dir {ckdir} already holds a run") and "\n" not in err
    assert main([*args, "--overwrite"]) == 0
    assert (ckdir / "metrics.jsonl").read_text() == log
    capsys.readouterr()
    assert main([*args[:3], "16", *args[4:], "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "example input 0 is float32[1, 3, 8, 8] in the checkpoint but float32[1, 3, 16, 16] in this run" in err
