"""Every op key with a channel rule, after importing graphprune.ops, graphprune.scoring.masked (its
masked conv/linear twins), torchvision and timm, is exercised
by a tiny model (``op_table.BUILDERS``): its rule must run, the producers' channels must be pruned
through it (unless the case says otherwise) and the pruned model must compute the masked dense
function. A key no model can call is listed in ``op_table.EXEMPTIONS`` with its reason; a key with
neither fails the completeness test. Keys whose model shows a known defect are strict xfails
(``op_table.KNOWN_DEFECTS``). Every key runs by default: about 30 s on one core for ~420 keys."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import pytest
import timm  # noqa: F401  (its layers register when imported)
import torchvision  # noqa: F401

import graphprune.ops  # noqa: F401  (fills the op table)
import graphprune.scoring.masked  # noqa: F401  (registers the masked twins)
from graphprune.ops.registry import SPECS, Method, _run_pending, describe, register
from tests.helpers import compile_and_check
from tests.ops.op_table import BUILDERS, EXEMPTIONS, KNOWN_DEFECTS

pytestmark = pytest.mark.usefixtures("single_thread")


def rule_keys() -> list[object]:
    _run_pending()
    return [key for key, spec in SPECS.items() if spec.propagate is not None]


def missing_keys() -> list[str]:
    """Registered keys with a channel rule but neither a builder nor an exemption."""
    return [describe(key) for key in rule_keys() if key not in BUILDERS and key not in EXEMPTIONS]


def _id(key: object) -> str:
    if isinstance(key, (Method, type)):
        return describe(key)
    return f"{getattr(key, '__module__', None) or ''}.{getattr(key, '__name__', repr(key))}"


def _selected() -> list[object]:
    """Sorted by name, so every xdist worker collects the same order whatever it imported first."""
    return [_param(key) for key in sorted((k for k in rule_keys() if k in BUILDERS), key=_id)]


def _param(key: object) -> object:
    if key in KNOWN_DEFECTS:
        reason, error = KNOWN_DEFECTS[key]
        return pytest.param(key, marks=pytest.mark.xfail(strict=True, raises=error, reason=reason))
    return key


def test_every_op_key_has_a_builder_or_an_exemption() -> None:
    assert missing_keys() == []


def test_completeness_check_reports_a_key_without_builder() -> None:
    def dummy_op(x):  # noqa: ANN001, ANN202
        return x

    register([dummy_op])(lambda ctx: None)
    try:
        assert missing_keys() == [describe(dummy_op)]
    finally:
        SPECS.pop(dummy_op)


def test_table_names_only_registered_keys() -> None:
    keys = set(rule_keys())
    assert [describe(k) for k in (*BUILDERS, *EXEMPTIONS) if k not in keys] == []
    assert not set(BUILDERS) & set(EXEMPTIONS)


@contextlib.contextmanager
def counting_rule_calls(key: object) -> Iterator[list[str]]:
    """Record the nodes the key's channel rule runs on."""
    spec = SPECS[key]
    calls: list[str] = []

    def counted(ctx):  # noqa: ANN001, ANN202
        calls.append(ctx.name)
        return spec.propagate(ctx)

    SPECS[key] = dataclasses.replace(spec, propagate=counted)
    try:
        yield calls
    finally:
        SPECS[key] = spec


def producers_pruned(model: object, kept: dict) -> bool:
    """Some producer parameter (or, without producers, some parameter outside the head) lost indices."""
    params = dict(model.named_parameters())
    owners = [n for n in params if n.startswith("pre.")] or [n for n in params if not n.startswith("head.")]
    return any(len(idx) < params[fqn].shape[int(d)] for fqn, dims in kept.items() if fqn in owners
               for d, idx in dims.items())


@pytest.mark.parametrize("key", _selected(), ids=_id)
def test_op_key_prunes_exactly(key: object) -> None:
    case = BUILDERS[key](key)
    with counting_rule_calls(key) as calls:
        result = compile_and_check(case.model, case.inputs, sparsity=0.5, exact=case.exact,
                                   leaf_modules=case.leaves)
    assert calls, f"the channel rule of {describe(key)} never ran: the model does not call the op"
    assert result.report.unknown_ops == []
    assert producers_pruned(case.model, result.report.kept) is case.through
