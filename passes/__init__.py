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

# scoring criteria and irregular masks (pruning at initialisation)
from passes.apply_masks import ApplyMasks  # noqa: E402
from passes.score_bn_scale import ScoreBnScale  # noqa: E402
from passes.score_fpgm import ScoreFpgm  # noqa: E402
from passes.score_grasp import ScoreGrasp  # noqa: E402
from passes.score_px import ScorePx  # noqa: E402
from passes.score_random import ScoreRandom  # noqa: E402
from passes.score_snip import ScoreSnip  # noqa: E402
from passes.score_synflow import ScoreSynflow  # noqa: E402
from passes.score_taylor import ScoreTaylor  # noqa: E402
from passes.score_weight_magnitude import ScoreWeightMagnitude  # noqa: E402

__all__ += ["ApplyMasks", "ScoreBnScale", "ScoreFpgm", "ScoreGrasp", "ScorePx", "ScoreRandom", "ScoreSnip",
            "ScoreSynflow", "ScoreTaylor", "ScoreWeightMagnitude"]

# unused-path removal and purification (P-RM)
from passes.purify import Purify  # noqa: E402
from passes.unused_paths import RemoveUnusedPaths  # noqa: E402

__all__ += ["Purify", "RemoveUnusedPaths"]

# fuse, emit and measured latency
from passes.emit import Emit  # noqa: E402
from passes.fuse import Fuse  # noqa: E402
from passes.layout import Layout  # noqa: E402
from passes.measure_latency import MeasureLatency  # noqa: E402

__all__ += ["Emit", "Fuse", "Layout", "MeasureLatency"]

# recovery training (fine-tuning, distillation from the dense model)
from passes.finetune import Finetune  # noqa: E402

__all__ += ["Finetune"]

# what P-RM added, and retraining after it (StructADMM's recipe)
from passes.retrain_purified import RetrainPurified  # noqa: E402

__all__ += ["RetrainPurified"]
