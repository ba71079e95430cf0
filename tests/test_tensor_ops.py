"""numpy-side tensor ops agree with torch: selection and copies bit for bit, norms to rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphprune import tensor_ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64])
@pytest.mark.parametrize("dim", [0, 1, 3])
def test_take_and_copy_are_bit_identical(dtype, dim):
    t = (torch.randn(6, 5, 3, 4) * 10).to(dtype)
    t = t.transpose(1, 2) if dim == 3 else t  # a non-contiguous view too
    index = np.array([0, 2, 3])
    got = tensor_ops.take(t, dim, index)
    want = t.index_select(dim, torch.from_numpy(index))
    assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)
    assert got.is_contiguous()
    dup = tensor_ops.copy(t)
    assert torch.equal(dup, t) and dup.stride() == t.stride() and dup.data_ptr() != t.data_ptr()


def test_take_from_a_parameter_detaches():
    p = torch.nn.Parameter(torch.randn(4, 3))
    got = tensor_ops.take(p, 1, np.array([2]))
    assert not got.requires_grad and torch.equal(got, p.detach()[:, 2:])


@pytest.mark.parametrize("shape", [(8,), (8, 5), (8, 5, 3, 3), (2, 7, 4), (1, 4), (3, 1 << 19, 3)])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_slice_norms_match_torch(shape, p, dtype):
    t = torch.randn(*shape).to(dtype)
    dims = list(range(min(len(shape), 2)))
    got = tensor_ops.slice_norms(t, dims, p)
    ref = t.double()
    for d in dims:
        want = (torch.linalg.vector_norm(ref, ord=p, dim=[o for o in range(ref.ndim) if o != d])
                if ref.ndim > 1 else ref.abs()).numpy()
        assert got[d].dtype == np.float64
        np.testing.assert_allclose(got[d], want, rtol=1e-5 if dtype == torch.float32 else 1e-2)
