"""Running passes over a CompileState: the pass registry, one pass run, and the re-run of analyses.

Why apart from ``graphprune.passes`` (what a pass declares) and ``graphprune.scheduler`` (which passes
run, in which order): the scheduler and the torch.fx adapter both run passes and re-run invalidated
analyses, and ``Pass.as_fx_pass`` hands a pass to the adapter; with the running here, below all three,
none of them imports another in a circle. Passes are read by their declarations only (``requires``,
``provides``, ``invalidates``, ``default_for``, ``reruns``), so this module needs no pass class.

``rerun_chain`` is the one place that decides which analyses run before a reader: ``ensure`` runs the
chain it returns, and the scheduler validates pinned pipelines and explains schedules with it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphprune import progress
from graphprune.errors import GraphpruneError, PipelineError, PlanError
from graphprune.state import CompileState

PASSES: dict[str, type] = {}  # name -> pass class; ``Pass`` subclasses register themselves here
TRACED = "traced"  # the first fact of every pipeline: before it a missing fact was never made


def invalidated(fact: str, patterns: frozenset[str]) -> bool:
    """``scores:*`` in ``invalidates`` covers every ``scores:<criterion>`` fact."""
    return fact in patterns or any(p.endswith("*") and fact.startswith(p[:-1]) for p in patterns)


def after(facts: frozenset[str], p: Any) -> frozenset[str]:
    """The facts that hold once ``p`` has run on a state holding ``facts``."""
    return frozenset({f for f in facts if not invalidated(f, p.invalidates)} | p.provides)


def run_pass(state: CompileState, p: Any, why: str = "") -> CompileState:
    missing = p.requires - state.facts
    ran = [name for name, _ in state.history]
    if missing:
        raise PipelineError(f"pass '{p.name}' requires {sorted(missing)}; passes run so far: {ran}")
    start = time.perf_counter()
    try:
        with progress.stage(p.name):  # the command line's spinner names the running pass
            new = p.run(state)
    except GraphpruneError:
        raise
    except Exception as exc:
        raise PipelineError(f"pass '{p.name}' failed after {ran}: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start
    return new.with_(facts=after(state.facts, p), history=(*state.history, (p.name, seconds)),
                     trail=(*state.trail, {"pass": p.label(), "why": why, "seconds": round(seconds, 4),
                                           "fingerprint": p.fingerprint()}))


def run_pipeline(state: CompileState, passes: Iterable[Any]) -> CompileState:
    for p in passes:
        state = run_pass(state, p)
    return state


def provider_of(fact: str, declaration: str) -> type | None:
    """The registered pass whose ``declaration`` (``default_for`` or ``reruns``) names ``fact``; None
    when none does. Two passes claiming one fact is an error naming both."""
    claims = sorted(name for name, cls in PASSES.items() if fact in getattr(cls, declaration, ()))
    if len(claims) > 1:
        raise PlanError(f"passes {', '.join(claims)} all declare {declaration} = {{'{fact}'}}; one pass "
                        f"may claim a fact")
    return PASSES[claims[0]] if claims else None


@dataclass(frozen=True)
class Rerun:
    """One analysis run before a reader: the pass, the fact it restores and who needs it."""

    pass_: Any
    fact: str
    reader: str

    @property
    def why(self) -> str:
        return f"re-run: '{self.fact}' needed by {self.reader}"


def rerun_chain(needed: frozenset[str], facts: frozenset[str], reader: str,
                from_scratch: bool = True) -> list[Rerun]:
    """The analyses to run, in order, so that a state holding ``facts`` holds ``needed`` for ``reader``.

    Once the state is traced a missing fact was invalidated: its ``reruns`` analysis restores it. Before,
    it was never made: with ``from_scratch`` its ``default_for`` pass builds it (the torch.fx adapter
    starts from a bare GraphModule), without (a pinned pipeline traces first itself) it stays missing.
    Each analysis comes after what it needs itself; one whose needs cannot be met is left out, and so
    is a fact no pass restores: ``run_pass`` then names the reader's missing facts."""
    chain: list[Rerun] = []
    _extend(chain, set(facts), needed, reader, from_scratch)
    return chain


def _extend(chain: list[Rerun], have: set[str], needed: frozenset[str], reader: str, from_scratch: bool) -> None:
    for fact in sorted(needed - have):
        if fact in have:  # an analysis earlier in this loop restored it
            continue
        traced = TRACED in have
        if not traced and not from_scratch:
            continue
        cls = provider_of(fact, "reruns" if traced else "default_for")
        if cls is None:
            continue
        p = cls()
        size, before = len(chain), set(have)
        _extend(chain, have, p.requires, p.label(), from_scratch)
        if not p.requires <= have:
            del chain[size:]
            have.clear()
            have.update(before)
            continue
        chain.append(Rerun(p, fact, reader))
        now = after(frozenset(have), p)
        have.clear()
        have.update(now)


def ensure(state: CompileState, facts: frozenset[str], reader: str) -> CompileState:
    """Run the analyses ``rerun_chain`` names, so that ``state`` holds ``facts`` for ``reader``."""
    for link in rerun_chain(facts, state.facts, reader):
        state = run_pass(state, link.pass_, link.why)
    return state


class StateCarrier:
    """The compile state shared by fx-adapted passes across ``PassManager`` calls."""

    def __init__(self, example_inputs: tuple[Any, ...], name: str = "model"):
        self.example_inputs = tuple(example_inputs)
        self.name = name
        self.state: CompileState | None = None
