"""StructADMM: structured pruning as constrained training over pruning groups (see docs/admm.md).

``prune(model, example_inputs, data, sparsity=..., loss_fn=..., optimizer=..., eval_fn=..., **options)``
is the one-call entry (``graphprune.compile`` with an ``[admm]`` table). Underneath,
``run_admm(module, constraint, spec, config)`` trains a module in place, ``build_constraint`` makes the
constraint for a structure, and the ``admm`` pass (``passes/admm.py``) runs it inside a pipeline.
"""

from graphprune.admm.api import prune
from graphprune.admm.config import AdmmConfig
from graphprune.admm.constraints import (
    Constraint,
    GroupConstraint,
    Projection,
    SequentialConstraint,
    WeightConstraint,
    build_constraint,
)
from graphprune.admm.loop import AdmmResult, run_admm

__all__ = ["AdmmConfig", "AdmmResult", "Constraint", "GroupConstraint", "Projection", "SequentialConstraint",
           "WeightConstraint", "build_constraint", "prune", "run_admm"]
