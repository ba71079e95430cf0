"""Measured CPU latency of model variants (dense, pruned, pruned+fused, ...), not estimated from MACs.

Why measured: fewer MACs do not always mean less time (odd channel counts, depthwise layers, memory
bound layers, framework overhead), and the claim graphprune makes is speed. Method: a fixed intra-op
thread count (restored afterwards), ``torch.inference_mode``, warm-up calls, then ``repeats`` rounds in
which every variant runs in turn, so a noisy neighbour slows all variants alike rather than
whichever happened to be measured at the time; the median per variant is reported, with min and max.
In a round each variant runs a warm block (``latency_record``'s default): a few calls, the first
untimed, so that its time is its own and not the cost of reloading its weights after the previous
variant evicted them.
Inputs at batch b repeat the batch-1 example inputs b times along dim 0.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int


@contextmanager
def eval_mode(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Every module in eval mode for the duration, each submodule's flag restored afterwards (the
    dense variant is usually the user's model: timing it must not leave it changed)."""
    flags = [(m, m.training) for module in modules for m in module.modules()]
    for m, _ in flags:
        m.training = False
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batched(inputs: Sequence[Any], batch: int) -> tuple[Any, ...]:
    """The example inputs (batch 1) repeated to ``batch`` along dim 0."""
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.ndim and x.shape[0] == 1:
            x = x.expand(batch, *x.shape[1:]).contiguous()
        elif isinstance(x, torch.Tensor) and batch != 1:
            raise ValueError(f"cannot batch an input of shape {tuple(x.shape)}: expected batch size 1")
        out.append(x)
    return tuple(out)


def timing_inputs(inputs: Sequence[Any], batch: int | None) -> tuple[Any, ...]:
    """``inputs`` as given (``batch`` None) or ``batched`` to ``batch``: what a latency budget times."""
    return tuple(inputs) if batch is None else batched(inputs, batch)


def sample_variants(variants: Mapping[str, nn.Module], inputs: Sequence[Any], *, repeats: int = 20,
                    warmup: int = 3, num_threads: int = 1, block: int | str = 1) -> dict[str, list[float]]:
    """Milliseconds of one forward per variant and round, in eval mode, measured round-robin: sample
    ``i`` of every variant comes from the same round. ``block``: calls per variant and round, the first
    untimed and the sample the median of the rest (``"auto"``: ``warm_block`` of each variant's time);
    with a block of one, each variant starts with the previous variant's weights in the cache, which
    for a model of a few milliseconds is a fifth of its time and not what a deployed model sees."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with threads(num_threads), eval_mode(list(variants.values())), torch.inference_mode():
        seconds = dict.fromkeys(variants, 0.0)
        for _ in range(warmup):
            for name, module in variants.items():
                start = time.perf_counter()
                module(*inputs)
                seconds[name] = time.perf_counter() - start
        sizes = {name: warm_block(seconds[name]) if block == "auto" else int(block) for name in variants}
        for _ in range(repeats):
            for name, module in variants.items():
                samples[name].append(block_seconds(functools.partial(module, *inputs), sizes[name]) * 1e3)
    return samples


def time_variants(variants: Mapping[str, nn.Module], inputs: Sequence[Any], *, repeats: int = 20,
                  warmup: int = 3, num_threads: int = 1) -> dict[str, Timing]:
    """Median (min, max) wall time of one forward per variant, measured round-robin."""
    samples = sample_variants(variants, inputs, repeats=repeats, warmup=warmup, num_threads=num_threads)
    return {name: _timing(s) for name, s in samples.items()}


def _timing(s: list[float]) -> Timing:
    return Timing(round(statistics.median(s), 4), round(min(s), 4), round(max(s), 4), len(s))


def latency_record(variants: Mapping[str, nn.Module], example_inputs: Sequence[Any], *,
                   batches: Sequence[int] = (1, 32), repeats: Mapping[int, int] | int = 20,
                   warmup: Mapping[int, int] | int = 3, num_threads: int = 1,
                   baseline: str = "dense", block: int | str = "auto") -> dict[str, Any]:
    """JSON-able record: per batch size, every variant's timing and its speedup over ``baseline``:
    ``speedup`` = baseline median / variant median, ``paired_speedup`` = median over rounds of the
    per-round ratio (robust to load that drifts between rounds). ``repeats`` and ``warmup`` may differ
    per batch size (``{1: 30, 32: 5}``); ``block`` is ``sample_variants``' (default: warm blocks)."""
    record: dict[str, Any] = {"threads": num_threads, "baseline": baseline, "block": block, "batches": {}}
    for batch in batches:
        n, w = (v[batch] if isinstance(v, Mapping) else v for v in (repeats, warmup))
        samples = sample_variants(variants, batched(example_inputs, batch), repeats=n, warmup=max(w, 1),
                                  num_threads=num_threads, block=block)
        base = samples.get(baseline)
        per_batch = {}
        for name, s in samples.items():
            entry = asdict(_timing(s))
            if base is not None:
                entry["speedup"] = round(statistics.median(base) / statistics.median(s), 3)
                entry["paired_speedup"] = round(statistics.median(b / t for b, t in zip(base, s)), 3)
            per_batch[name] = entry
        record["batches"][str(batch)] = per_batch
    return record


MEASURE_ROUNDS = 20  # at least
MAX_MEASURE_ROUNDS = 400
MEASURE_SECONDS = 3.0  # rounds fill this long (a timing of both models per round)
MEASURE_WARMUP = 3


def measured_fraction(dense: Callable[[], Any], pruned: Callable[[], Any], modules: Sequence[nn.Module],
                      *, num_threads: int = 1, rounds: int | None = None, warmup: int = MEASURE_WARMUP,
                      seconds: float = MEASURE_SECONDS) -> float:
    """Median over rounds of (pruned time / dense time). Each round runs the dense model, then the
    pruned one, in a block of calls each (``warm_block``: one for a model slower than 0.2 s, up to eight for a
    fast one, the first call of a block untimed): a model called straight after the other starts with
    the other's weights in the cache, which for a 10-30 ms model is a fifth of its time and is not what
    a deployed model sees. Interleaving the blocks keeps drifting load out of the ratio. Without
    ``rounds``, as many rounds as fill ``seconds`` (``MEASURE_ROUNDS`` to ``MAX_MEASURE_ROUNDS``)."""
    ratios: list[float] = []
    with threads(num_threads), eval_mode(list(modules)), torch.inference_mode():
        for _ in range(warmup):
            dense()
            pruned()
        begin = time.perf_counter()
        dense()
        pruned()
        block = warm_block(time.perf_counter() - begin)
        start = time.perf_counter()
        while True:
            ratios.append(block_seconds(pruned, block) / max(block_seconds(dense, block), 1e-12))
            done = len(ratios)
            if done >= (rounds if rounds is not None else MAX_MEASURE_ROUNDS):
                break
            if rounds is None and done >= MEASURE_ROUNDS and time.perf_counter() - start >= seconds:
                break
    return statistics.median(ratios)


def warm_block(round_seconds: float) -> int:
    """Calls per block for a model (or round) taking ``round_seconds``: one at 0.2 s and more, else
    enough to fill about 0.1 s, two to eight."""
    return 1 if round_seconds >= 0.2 else min(8, 2 + int(0.1 / max(round_seconds, 1e-6)))


def block_seconds(call: Callable[[], Any], block: int) -> float:
    """Seconds of one call: the median of a block's calls after its first (the only one for a block of one)."""
    times = []
    for _ in range(block):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return statistics.median(times[1:] if block > 1 else times)
