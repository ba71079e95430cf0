"""Property test of the model's interface: random DAGs (``tests.test_property_random_dags``) whose
``forward`` returns a random pytree of their intermediate tensors (dicts, OrderedDicts, namedtuples,
nested lists, ``None`` and number leaves), with a parameter shared by two convs and registered state
that ``forward`` never reads.

Whatever the structure, the pruned module returns the same structure type with the same keys and the
same leaf shapes, matches the masked dense model on every leaf, has no more parameters, keeps the tie
(one tensor) and keeps every state_dict key of the unused state."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import graphprune
from graphprune.testing import masked_equivalence_error
from tests.test_property_random_dags import RandomDag, build_dag, dags

Pair = collections.namedtuple("Pair", ["first", "second"])
pytestmark = pytest.mark.usefixtures("single_thread")


class PytreeDag(nn.Module):
    """A RandomDag whose output is ``structure`` with tensor slot ``i`` filled by the DAG's i-th value
    (``-1``: the head's logits)."""

    def __init__(self, dag: RandomDag, structure: Any) -> None:
        super().__init__()
        self.dag = dag
        self.structure = structure
        self.register_buffer("unused_running_stat", torch.arange(5.0))
        self.register_buffer("unused_scratch", torch.ones(3), persistent=False)
        self.unused_weight = nn.Parameter(torch.randn(4, 2))

    def forward(self, x: torch.Tensor) -> Any:
        vals, logits = self.dag.values(x)
        return _fill(self.structure, vals, logits)


def _fill(structure: Any, vals: list[torch.Tensor], logits: torch.Tensor) -> Any:
    if isinstance(structure, tuple) and structure[:1] == ("slot",):
        return logits if structure[1] < 0 else vals[structure[1] % len(vals)]
    if isinstance(structure, Pair):
        return Pair(*(_fill(s, vals, logits) for s in structure))
    if isinstance(structure, collections.OrderedDict):
        return collections.OrderedDict((k, _fill(v, vals, logits)) for k, v in structure.items())
    if isinstance(structure, dict):
        return {k: _fill(v, vals, logits) for k, v in structure.items()}
    if isinstance(structure, list):
        return [_fill(s, vals, logits) for s in structure]
    return structure  # None, numbers, strings pass through


class ValuesDag(RandomDag):
    """RandomDag that also hands out its intermediate values."""

    def values(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        captured: list[torch.Tensor] = []
        logits = RandomDag.forward(_Capture(self, captured), x)
        return captured, logits


class _Capture:
    """Runs RandomDag.forward with ``vals`` recorded (forward's list is local, so it is rebuilt here)."""

    def __init__(self, dag: RandomDag, sink: list[torch.Tensor]) -> None:
        self._dag, self._sink = dag, sink

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._dag, name)
        if isinstance(attr, nn.Module) and name.startswith("op"):
            def record(*args: Any, _m: nn.Module = attr) -> Any:
                out = _m(*args)
                self._sink.append(out)
                return out
            return record
        return attr


@st.composite
def structures(draw: st.DrawFn, depth: int = 0) -> Any:
    """A random output pytree over tensor slots, with at least one slot."""
    slot = st.builds(lambda i: ("slot", i), st.integers(-1, 12))
    if depth >= 2:
        return draw(slot)
    kind = draw(st.sampled_from(("slot", "dict", "odict", "pair", "list")))
    if kind == "slot":
        return draw(slot)
    child = structures(depth=depth + 1)
    extras = st.sampled_from((None, 3, 0.5))
    if kind == "pair":
        return Pair(draw(child), draw(st.one_of(child, extras)))
    if kind == "list":
        return [draw(child) for _ in range(draw(st.integers(1, 3)))] + draw(st.lists(extras, max_size=1))
    keys = draw(st.lists(st.sampled_from(("out", "aux", "feat", "logits", "mask")), min_size=1, max_size=3,
                         unique=True))
    items = [(k, draw(child)) for k in keys] + [("none", None)] * draw(st.integers(0, 1))
    return collections.OrderedDict(items) if kind == "odict" else dict(items)


def _tie_two_convs(model: nn.Module) -> tuple[str, str] | None:
    """Share the weight of the first two convs of equal weight shape; their names, or None."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    for i, (name_a, a) in enumerate(convs):
        for name_b, b in convs[i + 1:]:
            if a.weight.shape == b.weight.shape and a.groups == b.groups:
                b.weight = a.weight
                return f"{name_a}.weight", f"{name_b}.weight"
    return None


def _structure_of(value: Any) -> Any:
    """Type and keys at every level (shapes for tensors), to compare two outputs' structures."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape))
    if isinstance(value, dict):
        return (type(value), tuple((k, _structure_of(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_structure_of(v) for v in value))
    return (type(value), value)


def check_pytree_model(ops: list, head: tuple, structure: Any, seed: int, sparsity: float) -> None:
    where = f"\nops={ops!r}\nhead={head!r}\nstructure={structure!r}\nseed={seed} sparsity={sparsity}"
    dag, x = build_dag(ops, head, seed)
    core = ValuesDag(ops, head)
    core.load_state_dict(dag.state_dict())
    model = PytreeDag(core, structure).eval()
    tie = _tie_two_convs(model)
    with torch.no_grad():
        dense = model(x)
    result = graphprune.compile(model, (x,), sparsity=sparsity)
    with torch.no_grad():
        out = result.module(x)
    assert _structure_of(out) == _structure_of(dense), f"output structure changed{where}"
    err = masked_equivalence_error(model, result.module, result.report.kept, (x,))
    assert err <= 1e-4, f"masked equivalence error {err:.3g}{where}"
    report = result.report
    assert report.params_after <= report.params_before, where
    assert report.params_after == sum(p.numel() for p in result.module.parameters()), where
    assert set(model.state_dict()) == set(result.module.state_dict()), where
    assert "unused_scratch" not in result.module.state_dict() and hasattr(result.module, "unused_scratch")
    if tie is not None:
        assert result.module.get_parameter(tie[0]) is result.module.get_parameter(tie[1]), where
        assert [tie[0], tie[1]] in report.tied, where


@settings(max_examples=40, deadline=None, derandomize=True, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(dag=dags(), structure=structures(), seed=st.integers(0, 2**16), sparsity=st.sampled_from((0.25, 0.5, 0.75)))
def test_random_dags_with_pytree_outputs_keep_their_interface(dag, structure, seed, sparsity) -> None:
    ops, head = dag
    check_pytree_model(ops, head, structure, seed, sparsity)
