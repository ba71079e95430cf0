"""apply-masks: per-weight scores + a density -> irregular masks, installed in the emitted model.

Keeps the ``density`` fraction (default ``1 - options.sparsity``) of all scored weights with the
highest ``weight_scores[criterion]`` (``scope="global"``: one threshold over all layers;
``"local"``: the same density in every layer). Existing masks are intersected. Each masked
conv/linear of (a copy of) ``state.gm`` becomes its masked twin (``graphprune.scoring.masked``): weight zeroed
where masked, a ``weight_mask`` buffer, forward multiplying by it, so the masks survive training
(masked gradients are zero) and ``torch.export``. ``remove-channels`` slices per-weight scores and
masks with their parameters, so masks can be chosen before or after removal. Preconditions:
``traced`` and ``weight-scores:<criterion>`` (the requirement follows the configured criterion).
Effects: ``masks``; an artifact with the achieved and per-layer densities."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.copy_on_write import writable
from graphprune.errors import GraphpruneError
from graphprune.passes import Pass, Stage
from graphprune.plan.schema import NM_PATTERN
from graphprune.scoring.masked import install_masks, with_mask_members
from graphprune.scoring.masks import density_of, global_masks, local_masks
from graphprune.scoring.store import density_for
from graphprune.scoring.structured_masks import nm_masks, shape_masks
from graphprune.scoring.targets import Scores, prunable_weights
from graphprune.state import CompileState


def _current(scores: Scores, state: CompileState) -> Scores:
    """Scores of the weights still in the model; a shape mismatch is an error, never a guess."""
    weights = prunable_weights(state.gm)
    out = {}
    for fqn, s in scores.items():
        if fqn not in weights:
            continue
        if tuple(s.shape) != tuple(weights[fqn].shape):
            raise GraphpruneError(f"apply-masks: scores for {fqn} have shape {tuple(s.shape)}, the weight "
                                  f"{tuple(weights[fqn].shape)}")
        out[fqn] = s
    return out


@dataclass(frozen=True)
class ApplyMasks(Pass):
    name = "apply-masks"
    provides = frozenset({"masks"})
    stage = Stage.MASK
    default_for = frozenset({"masks"})
    leaves_dead_channels = True  # a filter or column masked off entirely
    criterion: str = "px"
    density: float | None = None
    scope: str = "global"
    structure: str = "irregular"  # irregular | shape (GEMM columns, per layer) | "N:M" (e.g. "2:4")

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        """Depends on the configured criterion, so the scheduler adds ``score-<criterion>``."""
        return frozenset({"traced", f"weight-scores:{self.criterion}"})

    def _choose(self, scores: Scores, density: float) -> tuple[dict, list[str]]:
        if self.structure == "shape":
            return shape_masks(scores, density), []
        nm = NM_PATTERN.match(self.structure)
        if nm:
            return nm_masks(scores, int(nm.group(1)), int(nm.group(2)))
        if self.structure != "irregular":
            raise GraphpruneError(f"apply-masks: unknown structure '{self.structure}' (irregular, shape or N:M)")
        return {"global": global_masks, "local": local_masks}[self.scope](scores, density), []

    def run(self, state: CompileState) -> CompileState:
        if self.criterion not in state.weight_scores:
            raise GraphpruneError(f"apply-masks: no weight scores named '{self.criterion}' "
                                  f"(have {sorted(state.weight_scores)}); run score-{self.criterion} first")
        scores = _current(state.weight_scores[self.criterion], state)
        density = density_for(state, self.density)
        masks, dense_layers = self._choose(scores, density)
        masks = {n: m & state.masks[n] if n in state.masks else m for n, m in masks.items()}
        gm = writable(state.gm)
        install_masks(gm, masks)
        artifact = {"criterion": self.criterion, "structure": self.structure, "left_dense": dense_layers,
                    "density": round(density_of(masks), 6), "scope": self.scope,
                    "layers": {n: round(float(m.float().mean()), 6) for n, m in masks.items()}}
        return state.with_(gm=gm, masks={**state.masks, **masks},
                           analysis=with_mask_members(state.analysis, list(masks)),
                           artifacts={**state.artifacts, self.name: artifact})
