"""``graphprune.admm.prune``: StructADMM on the user's own model, loss, optimizer and data in one call.

It is ``graphprune.compile`` with an ``[admm]`` table holding the user's hooks: trace, channel groups,
ADMM training over the groups (the ``admm`` pass), removal of the channels it zeroed, lossless
unused-path removal. The user's model is not mutated; the result's ``module`` is the trained, pruned
GraphModule and ``report.artifacts["admm"]`` summarises the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import nn


def prune(model: nn.Module, example_inputs: Any, data: Any, *, sparsity: float = 0.5,
          loss_fn: Callable[[Any, Any], Any] = F.cross_entropy, optimizer: Callable[..., Any] | None = None,
          scheduler: Callable[..., Any] | None = None, eval_fn: Callable[[nn.Module], dict] | None = None,
          on_step: Callable[..., Any] | None = None, plan: dict[str, Any] | None = None, **admm: Any):
    """Prune ``model`` with StructADMM.

    ``data``: a DataLoader, a Dataset (give ``batch_size``) or a sized sequence of (input, target) batches.
    ``optimizer``: ``params -> torch.optim.Optimizer``, called afresh for every phase (default SGD with
    ``lr``/``momentum``/``weight_decay``). ``scheduler``: ``(optimizer, steps_in_phase) -> scheduler``,
    stepped every step. ``eval_fn``: ``module -> {"acc": ..., ...}``, run on rank 0 after every Z/U
    update and retraining epoch. ``admm``: the ``[admm]`` options (``rho``, ``rho_growth``, ``rho_max``,
    ``update_every``, ``iterations``, ``progressive``, ``retrain_epochs``, ``checkpoint_dir``,
    ``checkpoint_every``, ``resume``, ``overwrite``, ``seed``, ``structure``, ...). ``plan``: further plan sections
    (``allocate``, ``emit``, ...). Returns ``graphprune.Result``."""
    from graphprune.api import compile

    hooks = {"loss_fn": loss_fn, "optimizer": optimizer, "scheduler": scheduler, "eval_fn": eval_fn,
             "on_step": on_step}
    table = {**admm, **{k: v for k, v in hooks.items() if v is not None}}
    full = {**(plan or {}), "sparsity": sparsity, "admm": table}
    return compile(model, example_inputs, plan=full, data=data)
