"""A small recovery run for the DDP test, in-process or on each rank of a gloo process group: an MLP
(no BatchNorm: per-rank batch statistics would differ from one process's) pruned by half, then distilled
from the dense MLP for 2 epochs over a global batch of 32 (16 per rank on two ranks)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graphprune.copy_on_write import unshare  # noqa: E402
from graphprune.passes import run_pipeline  # noqa: E402
from graphprune.state import CompileState  # noqa: E402
from graphprune.training.recovery import RecoveryConfig, run_recovery  # noqa: E402
from passes import Allocate, AnalyzeChannels, Canonicalize, RemoveChannels, ScoreMagnitude, Trace  # noqa: E402


def mlp_job(checkpoint_dir: str | None = None) -> dict:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g) + 0.5 * torch.randn(128, 3, generator=g)).argmax(1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    state = CompileState("mlp", model, (x[:1],))
    from graphprune.plan import load_plan

    state = state.with_(plan=load_plan({"sparsity": 0.5}))
    state = run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels(), ScoreMagnitude(),
                                 Allocate(plan=state.plan), RemoveChannels()])
    unshare(state.gm, model)
    config = RecoveryConfig(epochs=2, optimizer="sgd", lr=0.05, distill=True, distill_weight=0.5,
                            checkpoint_dir=checkpoint_dir, checkpoint_every=3, device="cpu", progress=False)
    result = run_recovery(state.gm, model, batches, batches, config)
    return {"state": state.gm.state_dict(), "accuracy": result.accuracy}


def ddp_worker(rank: int, world: int, init_file: str, outdir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(mlp_job(str(Path(outdir) / "ddp")), Path(outdir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
