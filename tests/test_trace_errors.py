"""A failed trace names the innermost line of model code and the untraceable pattern, and suggests only
fixes that can work: never ``leaf_modules=[<the root class>]`` (issue 11, defect 10)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
from graphprune.errors import TraceError

pytestmark = pytest.mark.usefixtures("single_thread")


class Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)


class BranchOnValue(Base):
    def forward(self, x):
        y = self.conv(x)
        if y.sum() > 0:  # LINE: value
            return y
        return -y


class BranchOnSize(Base):
    def forward(self, x):
        y = self.conv(x)
        if y.shape[1] > 2:  # LINE: size
            y = y * 2
        return y


class IterateProxy(Base):
    def forward(self, x):
        y = self.conv(x)
        for row in y:  # LINE: iterate
            y = y + row
        return y


def helper_with_len(y):
    return y * len(y)  # LINE: len


class CallsHelper(Base):
    def forward(self, x):
        return helper_with_len(self.conv(x))


class RangeOverSize(Base):
    def forward(self, x):
        y = self.conv(x)
        return sum(y[:, i] for i in range(y.shape[1]))  # LINE: range


class IntOfSize(Base):
    def forward(self, x):
        y = self.conv(x)
        return y.new_zeros(int(y.shape[1]))  # LINE: int


def _line_of(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, text in enumerate(f, 1) if f"# LINE: {marker}" in text)


ROOT_CASES = [(BranchOnValue, "value", "tensor value", "torch.where"),
              (BranchOnSize, "size", "traced size", "torch._assert"),
              (IterateProxy, "iterate", "iteration", "range(self.n)"),
              (CallsHelper, "len", "len()", "x.shape[0]"),
              (RangeOverSize, "range", "needs an int", "__init__"),
              (IntOfSize, "int", "Python number", "keep it a tensor")]


@pytest.mark.parametrize("cls,marker,pattern,fix", ROOT_CASES)
def test_root_failure_names_the_line_and_the_pattern_and_no_leaf_fix(cls, marker, pattern, fix):
    with pytest.raises(TraceError) as info:
        graphprune.compile(cls(), torch.randn(1, 3, 4, 4), capture="fx")  # fx's own message (auto: its lead)
    message = str(info.value)
    assert f"test_trace_errors.py:{_line_of(marker)}" in message
    assert f"model's own forward ({cls.__name__})" in message
    assert pattern in message and fix in message
    assert "leaf_modules" not in message  # the tracer runs the root's forward: a leaf cannot help
    assert "\n" not in message


class Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), BranchOnValue())

    def forward(self, x):
        return self.body(x)


def test_submodule_failure_suggests_rewriting_or_keeping_it_opaque():
    with pytest.raises(TraceError) as info:
        graphprune.compile(Wrapper(), torch.randn(1, 3, 4, 4))
    message = str(info.value)
    assert "module 'body.1' (BranchOnValue)" in message
    assert f"test_trace_errors.py:{_line_of('value')}" in message
    assert "torch.where" in message and "leaf_modules=[BranchOnValue]" in message


def test_the_suggested_leaf_works_for_the_submodule():
    r = graphprune.compile(Wrapper(), torch.randn(1, 3, 4, 4), leaf_modules=[BranchOnValue])
    assert any("BranchOnValue" in u["op"] for u in r.report.unknown_ops)
