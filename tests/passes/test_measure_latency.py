"""measure-latency: the pass times the dense, pruned and pruned+fused models at each batch size and
records it as the ``latency`` artifact, leaving the user's model in its mode (the timing itself:
tests/test_latency.py)."""

from __future__ import annotations


def test_measure_latency_pass_times_dense_pruned_and_fused() -> None:
    import graphprune
    import models_zoo
    from graphprune.passes import run_pipeline
    from passes.measure_latency import MeasureLatency

    model, (x,) = models_zoo.load("zoo:resnet20")
    result = graphprune.compile(model.train(), (x,), sparsity=0.5)
    state = run_pipeline(result.state, [MeasureLatency(batches=(1, 4), repeats=(5, 2), warmup=1)])
    record = state.artifacts["latency"]
    assert set(record["batches"]["4"]) == {"dense", "pruned", "pruned+fused"}
    assert all(t["median_ms"] > 0 for b in record["batches"].values() for t in b.values())
    assert model.training, "timing switched the user's model to eval mode"
