"""The ADMM loop on tiny models: the primal residual falls, the hard prune is nearly lossless, masked
retraining keeps pruned weights at zero, progressive steps nest, and the pass hands remove-channels a
keep decision whose removal reproduces the trained model."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import models_zoo
from graphprune.admm import AdmmConfig, WeightConstraint, build_constraint, run_admm
from graphprune.errors import InputError
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from graphprune.testing import relative_error
from graphprune.training import CheckpointError, TrainSpec, accuracy_eval
from passes import Admm, AnalyzeChannels, Canonicalize, RemoveChannels, Trace

pytestmark = pytest.mark.usefixtures("single_thread")


def noisy_task(seed: int = 0, n: int = 256, batch: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g) + torch.randn(n, 3, generator=g)).argmax(1)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def pretrained_mlp(batches, seed: int = 0, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 3))
    opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=1e-3)
    for _ in range(20):
        for x, y in batches:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model


def analysed(model: nn.Module, inputs: tuple, **options) -> CompileState:
    return run_pipeline(CompileState("m", model, inputs, Options(**options)),
                        [Trace(), Canonicalize(), AnalyzeChannels()])


def channel_constraint(state: CompileState):
    gm = copy.deepcopy(state.gm)
    cg = state.channels
    return gm, build_constraint("channel", gm, cg.groups, int(cg.labels.max()) + 1)


@pytest.mark.parametrize("seed", [0, 3])
def test_primal_residual_decreases_and_hard_prune_is_nearly_lossless(seed):
    batches = noisy_task(seed)
    state = analysed(pretrained_mlp(batches, seed), (batches[0][0][:1],))
    gm, constraint = channel_constraint(state)
    config = AdmmConfig(sparsity=0.5, iterations=6, update_every="2 epochs", retrain_epochs=0, rho=0.05,
                        rho_growth=2.0, lr=0.02, weight_decay=1e-3, progress=False)
    result = run_admm(gm, constraint, TrainSpec(batches, eval_fn=accuracy_eval(batches)), config)
    primal = [r["primal"] for r in result.metrics if r["event"] in ("start", "update")]
    assert len(primal) == 7
    assert all(b < a for a, b in zip(primal, primal[1:])), primal
    assert primal[-1] < 0.25 * primal[0]
    (prune,) = [r for r in result.metrics if r["event"] == "prune"]
    assert abs(prune["eval"]["loss"] - prune["eval_before"]["loss"]) < 0.01
    assert result.keep.sum() == 8 + 3 + 8  # input and output groups are frozen; 8 of 16 hidden survive


def test_masked_retraining_and_progressive_steps():
    batches = noisy_task(1)
    state = analysed(pretrained_mlp(batches, 1, hidden=20), (batches[0][0][:1],))
    gm, constraint = channel_constraint(state)
    zero_rows: dict[int, set[int]] = {}

    def watch(info):  # rows of the hidden layer that are exactly zero during each retraining
        if info.phase == "retrain":
            rows = gm.get_parameter("0.weight").detach().abs().sum(1)
            zero_rows.setdefault(info.stage, set()).update(np.flatnonzero(rows.numpy() == 0).tolist())

    config = AdmmConfig(sparsity=0.6, progressive=(0.3,), iterations=2, retrain_epochs=1, rho=0.05, lr=0.05,
                        weight_decay=5e-3, progress=False)
    result = run_admm(gm, constraint, TrainSpec(batches, on_step=watch), config)
    starts = [r for r in result.metrics if r["event"] == "start"]
    assert [r["target"] for r in starts] == [0.3, 0.6]
    assert all(r["rho"] == config.rho for r in starts)  # rho resets at every progressive step
    assert len(zero_rows[0]) == 6 and len(zero_rows[1]) == 12
    assert zero_rows[0] <= zero_rows[1]  # the second step starts from the first step's pruned model
    for name, mask in result.masks.items():
        assert torch.equal(gm.get_parameter(name).detach() * ~mask, torch.zeros_like(mask, dtype=torch.float))


def test_mask_level_structure_meets_n_m():
    batches = noisy_task(2)
    model = pretrained_mlp(batches, 2)
    constraint = WeightConstraint("2:4", ("0.weight", "2.weight"))
    config = AdmmConfig(sparsity=0.5, structure="2:4", iterations=2, retrain_epochs=1, progress=False)
    result = run_admm(model, constraint, TrainSpec(batches), config)
    assert result.keep is None
    w = model[0].weight.detach()
    assert int((w.reshape(16, 2, 4) != 0).sum(-1).max()) <= 2


def test_admm_pass_on_resnet20_feeds_remove_channels():
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(3)]
    state = analysed(model, (data[0][0][:1],), sparsity=0.5).with_(data=data)
    state = run_pipeline(state, [Admm(iterations=2, retrain_epochs=1, progress=False, lr=0.01)])
    assert {"weights-trained", "keep", "masks"} <= state.facts
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the user's model is untouched
    trained = copy.deepcopy(state.gm).eval()
    pruned = run_pipeline(state, [RemoveChannels()]).gm.eval()
    x = torch.randn(4, 3, 8, 8, generator=g)
    with torch.no_grad():
        assert relative_error(pruned(x), trained(x)) < 1e-5
    assert sum(p.numel() for p in pruned.parameters()) < 0.35 * sum(p.numel() for p in model.parameters())
    assert state.artifacts["admm"]["steps"] == 2 * 3 + 3


def test_corrupt_checkpoint_is_named(tmp_path: Path):
    batches = noisy_task(0, n=64)
    model = pretrained_mlp(batches, 0)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    config = AdmmConfig(iterations=1, retrain_epochs=0, checkpoint_dir=str(tmp_path), resume=True, progress=False)
    with pytest.raises(CheckpointError, match=str(tmp_path / "checkpoint.pt")):
        run_admm(model, WeightConstraint("irregular", ("0.weight",)), TrainSpec(batches), config)


def test_resume_with_other_settings_is_refused(tmp_path: Path):
    batches = noisy_task(0, n=64)
    constraint = WeightConstraint("irregular", ("0.weight",))
    config = AdmmConfig(iterations=1, retrain_epochs=0, checkpoint_dir=str(tmp_path), progress=False)
    run_admm(pretrained_mlp(batches, 0), constraint, TrainSpec(batches), config)
    changed = AdmmConfig(iterations=1, retrain_epochs=0, checkpoint_dir=str(tmp_path), progress=False, resume=True,
                         rho=0.5)
    with pytest.raises(CheckpointError, match=r"admm\.rho is 0\.001 in the checkpoint but 0\.5 in this run"):
        run_admm(pretrained_mlp(batches, 0), constraint, TrainSpec(batches), changed)


@pytest.mark.parametrize("kwargs,key", [
    ({"progressive": (0.6, 0.4)}, "admm.progressive"),
    ({"sparsity": 0.5, "progressive": (0.7,)}, "admm.progressive"),
    ({"update_every": "two epochs"}, "admm.update_every"),
    ({"rho_growth": 0.5}, "admm.rho_growth"),
    ({"sparsity": 1.0}, "admm.sparsity"),
])
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(InputError, match=key):
        AdmmConfig(**kwargs)


def test_admm_pass_without_data_says_so():
    model, inputs = models_zoo.load("zoo:resnet20", input_size=8)
    with pytest.raises(InputError, match="no training data"):
        Admm().run(analysed(model, inputs))


def test_admm_pass_takes_per_group_targets_from_the_plan_rules():
    from graphprune.plan import load_plan

    plan = load_plan({"prune": [{"select": "*", "sparsity": 0.25}, {"select": "layers.8.*", "sparsity": 0.75}]})
    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    state = analysed(model, (data[0][0][:1],)).with_(plan=plan, data=data)
    state = run_pipeline(state, [Admm(iterations=1, retrain_epochs=0, progress=False)])
    kept = {g.describe().split(",")[0]: int(state.keep[g.labels].sum()) for g in state.channels.groups}
    assert kept["layers.8.conv1.0.weight"] == 16  # 75 % of 64 removed by the more specific rule
    assert kept["layers.7.conv1.0.weight"] == 48 and kept["layers.0.conv1.0.weight"] == 12  # 25 % elsewhere
    assert state.artifacts["admm"]["targets"] == [0.75]


def test_prune_runs_the_users_hooks_and_returns_a_smaller_model():
    from graphprune.admm import prune

    model, _ = models_zoo.load("zoo:resnet20", input_size=8)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    calls = {"optimizer": 0, "eval": 0}

    def optimizer(params):
        calls["optimizer"] += 1
        return torch.optim.Adam(params, lr=1e-3)

    def evaluate(module):
        calls["eval"] += 1
        return accuracy_eval(data)(module)

    result = prune(model, (data[0][0][:1],), data, sparsity=0.5, optimizer=optimizer, eval_fn=evaluate,
                   iterations=2, retrain_epochs=1, progress=False)
    assert calls["optimizer"] == 2  # one fresh optimizer for the ADMM phase, one for retraining
    assert calls["eval"] == 2 + 2 + 1 + 1  # per update, around the hard prune, per retrain epoch, at the end
    assert result.report.params_after < 0.35 * result.report.params_before
    assert result.report.artifacts["admm"]["steps"] == 2 * 2 + 2


def test_recalibrate_batchnorm_averages_the_given_batches():
    from graphprune.training.spec import recalibrate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(5, 3, 6, 6, generator=g), None) for _ in range(4)]
    assert recalibrate_batchnorm(model, batches, 3, torch.device("cpu")) == 3
    with torch.no_grad():
        conv = torch.cat([model[0](x) for x, _ in batches[:3]])
    torch.testing.assert_close(model[1].running_mean, conv.mean((0, 2, 3)))
    assert not model.training and model[1].momentum == 0.1


def test_admm_pass_fields_mirror_the_config():
    from dataclasses import fields

    hooks = {"loss_fn", "optimizer", "scheduler", "eval_fn", "on_step", "batch_size"}
    assert {f.name for f in fields(Admm)} - hooks == {f.name for f in fields(AdmmConfig)}
