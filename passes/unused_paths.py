"""remove-unused-paths: keep every channel except the dead ones (lossless unused-path removal).

A channel is dead when every tensor carrying it is zero for all inputs or read by nothing
(``graphprune.liveness``): zero filters whose norm maps zero to zero, consumers whose input columns
are all zero (in the weights or in ``state.masks``), and what those expose downstream/upstream; across
a residual add or a concat it must be dead in every member. Frozen and inexact channels are kept. Each
member keeps at least one channel (a zero-width layer is not a layer). The decision is ``keep``; run
``remove-channels`` after it, and ``purify_to_fixed_point`` to repeat analyse/decide/remove until
nothing more dies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphprune.liveness import dead_labels
from graphprune.passes import Pass, Stage, run_pipeline
from graphprune.state import CompileState


def keep_live(state: CompileState, dead: np.ndarray) -> np.ndarray:
    """``~dead``, except that a member left with no channel keeps its first one."""
    keep = ~dead
    for group in state.channels.groups:
        for m in group.members:
            labs = group.labels[m.channel]
            if len(labs) and not keep[labs].any():
                keep[labs[0]] = True
    return keep


@dataclass(frozen=True)
class RemoveUnusedPaths(Pass):
    name = "remove-unused-paths"
    requires = frozenset({"groups"})
    provides = frozenset({"keep"})
    stage = Stage.DEAD_CHANNELS
    fixed_point = "detect"
    transitive: bool = True  # False: one hop per round (the classic rule), repeated rounds converge

    def run(self, state: CompileState) -> CompileState:
        keep = keep_live(state, dead_labels(state, self.transitive))
        removed = {g.describe(): int((~keep[g.labels]).sum()) for g in state.channels.groups
                   if not keep[g.labels].all()}
        record = {"dead_channels": int((~keep).sum()), "groups": removed}
        return state.with_(keep=keep, artifacts={**state.artifacts, self.name: record})


def purify_to_fixed_point(state: CompileState, transitive: bool = True, max_rounds: int = 20) -> CompileState:
    """Analyse, find dead channels, remove them; again until a round finds none. The state must be
    traced; shapes and groups are recomputed as needed. ``artifacts["unused-paths"]["rounds"]`` lists
    the channels removed per round (the last, empty round confirms the fixed point)."""
    from passes.analyze_channels import AnalyzeChannels
    from passes.propagate_shapes import PropagateShapes
    from passes.remove_channels import RemoveChannels

    rounds: list[int] = []
    for _ in range(max_rounds):
        prep = [p for p, fact in ((PropagateShapes(), "shapes"), (AnalyzeChannels(), "groups"))
                if fact not in state.facts]
        state = run_pipeline(state, [*prep, RemoveUnusedPaths(transitive)])
        dead = int((~state.keep).sum())
        rounds.append(dead)
        if not dead:
            break
        state = run_pipeline(state, [RemoveChannels()])
    record = {"rounds": rounds, "removed": sum(rounds), "fixed_point": rounds[-1] == 0}
    return state.with_(artifacts={**state.artifacts, "unused-paths": record})
