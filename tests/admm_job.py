"""A small, complete ADMM run used by the resume and DDP tests, in-process or as a subprocess.

``python tests/admm_job.py CHECKPOINT_DIR OUT [KILL_AT]`` runs (or resumes) the job and saves the
final weights and masks to OUT; with KILL_AT the process SIGKILLs itself right after that step.
The job exercises everything a resume must restore: a shuffled DataLoader, dropout (RNG), BatchNorm
buffers, Adam state, a per-phase LR scheduler, two progressive steps with Z/U, rho and masks.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graphprune.admm import AdmmConfig, build_constraint, run_admm  # noqa: E402
from graphprune.copy_on_write import unshare  # noqa: E402
from graphprune.passes import run_pipeline  # noqa: E402
from graphprune.state import CompileState  # noqa: E402
from graphprune.training import TrainSpec  # noqa: E402
from passes import AnalyzeChannels, Canonicalize, Trace  # noqa: E402

CONFIG = dict(sparsity=0.5, progressive=(0.3,), iterations=2, update_every=4, retrain_epochs=1, rho=0.01,
              checkpoint_every=3, progress=False)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def dataset(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 6, 6, generator=g)
    return TensorDataset(x, (x.mean((1, 2, 3)) * 8).long().clamp(-2, 1) + 2)


def job(checkpoint_dir: str, kill_at: int | None = None, **overrides) -> dict:
    torch.set_num_threads(1)
    model = tiny_cnn()
    state = run_pipeline(CompileState("tiny", model, (torch.randn(1, 3, 6, 6),)),
                         [Trace(), Canonicalize(), AnalyzeChannels()])
    gm = state.gm
    unshare(gm, model)
    constraint = build_constraint("group", gm, state.channels.groups, int(state.channels.labels.max()) + 1)

    def die(info):
        if info.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    spec = TrainSpec(DataLoader(dataset(), batch_size=16, shuffle=True),
                     optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
                     scheduler=lambda opt, steps: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1)),
                     on_step=die)
    config = AdmmConfig(**{**CONFIG, "checkpoint_dir": checkpoint_dir, "resume": True, **overrides})
    result = run_admm(gm, constraint, spec, config)
    return {"state": gm.state_dict(), "masks": result.masks, "keep": torch.from_numpy(result.keep)}


if __name__ == "__main__":
    ckdir, out = sys.argv[1], sys.argv[2]
    kill = int(sys.argv[3]) if len(sys.argv) > 3 else None
    torch.save(job(ckdir, kill), out)


def mlp_job(checkpoint_dir: str | None = None) -> dict:
    """A BatchNorm-free job (per-rank batch statistics would differ from one process's) for the DDP test:
    a global batch of 32, split 16/16 across two ranks."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g) + 0.5 * torch.randn(128, 3, generator=g)).argmax(1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    state = run_pipeline(CompileState("mlp", model, (x[:1],)), [Trace(), Canonicalize(), AnalyzeChannels()])
    gm = state.gm
    unshare(gm, model)
    constraint = build_constraint("group", gm, state.channels.groups, int(state.channels.labels.max()) + 1)
    config = AdmmConfig(sparsity=0.5, iterations=3, update_every=4, retrain_epochs=2, rho=0.02, lr=0.05,
                        checkpoint_dir=checkpoint_dir, checkpoint_every=5, device="cpu", progress=False)
    result = run_admm(gm, constraint, TrainSpec(batches), config)
    return {"state": gm.state_dict(), "masks": result.masks, "keep": torch.from_numpy(result.keep)}


def ddp_worker(rank: int, world: int, init_file: str, outdir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(mlp_job(str(Path(outdir) / "ddp")), Path(outdir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
