"""The ADMM loop on tiny models: the primal residual falls, the hard prune is nearly lossless, masked
retraining keeps pruned weights at zero, progressive steps nest, mask-level structures are met, and a
corrupt checkpoint or a resume with other settings is refused (the ``admm`` pass itself:
tests/passes/test_admm.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from graphprune.admm import AdmmConfig, WeightConstraint, build_constraint, run_admm
from graphprune.passes import run_pipeline
from graphprune.state import CompileState, Options
from graphprune.training import CheckpointError, TrainSpec, accuracy_eval
from passes import AnalyzeChannels, Canonicalize, Trace

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
    return gm, build_constraint("group", gm, cg.groups, int(cg.labels.max()) + 1)


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
    with pytest.raises(CheckpointError, match=r"admm\.rho is 0\.03 in the checkpoint but 0\.5 in this run"):
        run_admm(pretrained_mlp(batches, 0), constraint, TrainSpec(batches), changed)


def test_z_fixed_ablation_keeps_the_first_projection():
    batches = noisy_task(4)
    state = analysed(pretrained_mlp(batches, 4, hidden=20), (batches[0][0][:1],))
    gm, constraint = channel_constraint(state)
    first = constraint.project({n: gm.get_parameter(n).detach() for n in constraint.names}, 0.5).keep
    config = AdmmConfig(sparsity=0.5, iterations=4, retrain_epochs=0, rho=0.5, rho_growth=1.5, lr=0.02,
                        update_z=False, progress=False)
    result = run_admm(gm, constraint, TrainSpec(batches), config)
    primal = [r["primal"] for r in result.metrics if r["event"] in ("start", "update")]
    assert np.array_equal(result.keep, first)  # W was pulled onto the fixed Z = Proj(W0)
    assert primal[-1] < 0.5 * primal[0]
    (prune,) = [r for r in result.metrics if r["event"] == "prune"]
    assert prune["primal"] == pytest.approx(primal[-1]) and 0 < prune["primal_rel"] < 0.5
    assert "update_z" in config.trajectory()


def test_default_rho_converges_by_the_hard_prune():
    batches = noisy_task(5)
    state = analysed(pretrained_mlp(batches, 5, hidden=20), (batches[0][0][:1],))
    residual = {}
    for rho in (1e-3, AdmmConfig().rho):  # the old default, then the current one (with the default growth)
        gm, constraint = channel_constraint(state)
        result = run_admm(gm, constraint, TrainSpec(batches), AdmmConfig(sparsity=0.5, rho=rho, retrain_epochs=0,
                                                                         progress=False))
        (prune,) = [r for r in result.metrics if r["event"] == "prune"]
        residual[rho] = prune["primal_rel"]
    assert residual[AdmmConfig().rho] < 0.7 * residual[1e-3]  # mnist5k ResNet-20: 0.065 vs 1.27 (docs/admm.md)
