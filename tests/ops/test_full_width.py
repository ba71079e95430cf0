"""graphprune.ops.full_width: each kernel computes its dense op on the input zero-padded back to the
original width, from the kept channels alone (table-driven), for the widths and corrections a removal
produces. The rewrites that put the kernels in the graph run end to end in tests/test_statistics.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphprune.ops import full_width

KEPT, FULL = 6, 10


def _padded(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.zeros(*x.shape[:-1], FULL - KEPT)], -1)


def _padded_param(p: torch.Tensor) -> torch.Tensor:
    return torch.cat([p, torch.zeros(FULL - KEPT)])


W, B = torch.rand(KEPT) + 0.5, torch.randn(KEPT)
CASES = {  # kernel call on the kept channels -> the dense op on the padded input, sliced to the kept
    "layer_norm": (lambda x: full_width.layer_norm(x, (KEPT,), W, B, 1e-5, full=FULL),
                   lambda p: F.layer_norm(p, (FULL,), _padded_param(W), _padded_param(B))[..., :KEPT]),
    "layer_norm, no affine": (lambda x: full_width.layer_norm(x, (KEPT,), full=FULL),
                              lambda p: F.layer_norm(p, (FULL,))[..., :KEPT]),
    "rms_norm": (lambda x: full_width.rms_norm(x, (KEPT,), W, None, full=FULL),
                 lambda p: F.rms_norm(p, (FULL,), _padded_param(W))[..., :KEPT]),
    "var, unbiased": (lambda x: full_width.var(x, -1, 1, True, ratio=KEPT / FULL),
                      lambda p: torch.var(p, -1, keepdim=True)),
    "var over two dims, biased": (lambda x: full_width.var(x, (1, 2), 0, False, ratio=KEPT / FULL),
                                  lambda p: torch.var(p, (1, 2), correction=0)),
    "std": (lambda x: full_width.std(x, -1, 1, False, ratio=KEPT / FULL), lambda p: torch.std(p, -1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_equals_the_dense_op_on_zero_padding(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, KEPT) * 3 + 1  # a large mean: the variance form must not cancel
    kernel, dense = CASES[name]
    assert torch.allclose(kernel(x), dense(_padded(x)), atol=1e-5)


def test_kernels_are_marked_standalone_and_use_only_torch() -> None:
    import inspect

    for fn in (full_width.layer_norm, full_width.rms_norm, full_width.var, full_width.std):
        assert getattr(fn, full_width.STANDALONE)
        names = set(fn.__code__.co_names) - {"torch", "range", "len", "tuple", "max", "finfo", "var_mean", "rsqrt",
                                              "sqrt", "pow", "mean", "dtype", "eps", "numel", "contiguous"}
        assert not names, (fn.__name__, names, inspect.getsource(fn)[:80])


def test_layer_norm_of_a_permuted_input_is_contiguous_like_f_layer_norm() -> None:
    """A linear after a non-contiguous output copies it and runs mm + add instead of addmm (convnext)."""
    x = torch.randn(2, KEPT, 4, 4).permute(0, 2, 3, 1)  # NCHW storage seen as NHWC
    got = full_width.layer_norm(x, (KEPT,), torch.randn(KEPT), torch.randn(KEPT), full=FULL)
    assert not x.is_contiguous() and got.is_contiguous()
    assert torch.nn.functional.layer_norm(x, (KEPT,)).is_contiguous()
