"""The pass library: one module per pass, named after it. Importing registers them by name."""

from passes.allocate import Allocate
from passes.analyze_channels import AnalyzeChannels
from passes.canonicalize import Canonicalize
from passes.propagate_shapes import PropagateShapes
from passes.remove_channels import RemoveChannels
from passes.score_magnitude import ScoreMagnitude
from passes.trace import Trace

__all__ = ["Allocate", "AnalyzeChannels", "Canonicalize", "PropagateShapes", "RemoveChannels", "ScoreMagnitude",
           "Trace"]

# StructADMM constrained training
from passes.admm import Admm  # noqa: E402

__all__ += ["Admm"]
