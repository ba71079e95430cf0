"""StructADMM: structured pruning as constrained training over pruning groups (see docs/admm.md).

``run_admm(module, constraint, spec, config)`` trains a module in place; ``build_constraint`` makes the
constraint for a plan's structure; the ``admm`` pass (``passes/admm.py``) runs it inside a pipeline.
"""

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
           "WeightConstraint", "build_constraint", "run_admm"]
