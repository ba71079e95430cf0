"""Training infrastructure shared by data-driven passes: the user's hooks (``TrainSpec``), a
deterministic batch stream, atomic checkpoints with RNG state, progress/metrics, and torchrun DDP."""

from graphprune.training.checkpoint import CheckpointError
from graphprune.training.spec import StepInfo, TrainSpec, accuracy_eval

__all__ = ["CheckpointError", "StepInfo", "TrainSpec", "accuracy_eval"]
