"""The op table's registry (graphprune/ops/registry.py): registrations for an optional package wait until
it is imported, and none of them replaces another."""

from __future__ import annotations

import sys
import types

import pytest

from graphprune.ops import registry
from graphprune.ops.registry import lookup, register_when_imported

PACKAGE = "graphprune_test_optional_package"


@pytest.fixture
def optional_package():
    """A package name nobody has imported yet; calling the fixture's value imports it."""
    assert PACKAGE not in sys.modules
    yield lambda: sys.modules.setdefault(PACKAGE, types.ModuleType(PACKAGE))
    sys.modules.pop(PACKAGE, None)
    registry._PENDING.pop(PACKAGE, None)


def test_every_registration_for_a_package_runs_once_it_is_imported(optional_package):
    ran: list[str] = []
    register_when_imported(PACKAGE, lambda: ran.append("first"))
    register_when_imported(PACKAGE, lambda: ran.append("second"))
    assert ran == []
    optional_package()
    assert lookup(object) is None  # any lookup runs the pending registrations
    assert ran == ["first", "second"]
    assert lookup(object) is None
    assert ran == ["first", "second"]


def test_a_registration_for_an_imported_package_runs_at_once(optional_package):
    optional_package()
    ran: list[str] = []
    register_when_imported(PACKAGE, lambda: ran.append("now"))
    assert ran == ["now"]
    assert PACKAGE not in registry._PENDING
