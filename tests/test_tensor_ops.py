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


def test_results_are_aligned_like_the_tensors_torch_allocates():
    """numpy's own arrays are 16-byte aligned; a pruned model's weights must be 64-byte aligned as the
    dense model's are (a kernel may take another path on a misaligned pointer)."""
    base = torch.randn(17, 33, 3, 3)
    for offset in range(1, 5):  # sources that start anywhere
        t = base.view(-1)[offset:offset + 16 * 33 * 9].view(16, 33, 3, 3)
        for got in (tensor_ops.take(t, 0, np.arange(0, 16, 3)), tensor_ops.take(t, 1, np.array([1, 5, 7])),
                    tensor_ops.copy(t), tensor_ops.copy(t.contiguous(memory_format=torch.channels_last))):
            assert got.data_ptr() % 64 == 0


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


def _sizes_and_tensors():
    big = tensor_ops.PARALLEL_MIN_NUMEL
    return [torch.full((n,), float(i)) for i, n in enumerate([3, big, 5, big + 7, 1])]


def test_map_large_keeps_order_and_values_whatever_runs_where():
    tensors = _sizes_and_tensors()
    with_threads = tensor_ops.map_large(lambda t: t.sum().item(), tensors, lambda t: t.numel())
    assert with_threads == [t.sum().item() for t in tensors]


def test_map_large_reraises_a_worker_error():
    def boom(t):
        if t.numel() >= tensor_ops.PARALLEL_MIN_NUMEL:
            raise ValueError("worker failed")
        return 0

    with pytest.raises(ValueError, match="worker failed"):
        tensor_ops.map_large(boom, _sizes_and_tensors(), lambda t: t.numel())


def _numpy_sum(t: torch.Tensor) -> float:
    return float(t.numpy().sum())


# Made before forking and inherited: in a child forked after the parent used torch's OpenMP threads,
# any torch op large enough to go parallel hangs (a torch/libgomp limitation, not graphprune's), so the
# child only runs numpy work on the parent's tensors.
_FORK_TENSORS: list[torch.Tensor] = []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_map_large_works_in_a_forked_child_after_the_parent_used_the_pool():
    """A forked child inherits the parent's pool object but none of its threads: it must make its own,
    not queue work that never runs."""
    import multiprocessing as mp

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tensors = _FORK_TENSORS[:] = _sizes_and_tensors()
        expected = [_numpy_sum(t) for t in tensors]
        assert tensor_ops.map_large(_numpy_sum, tensors, lambda t: t.numel()) == expected  # pool exists now
        with mp.get_context("fork").Pool(1) as pool:
            assert pool.apply_async(_child_sums).get(timeout=60) == expected
    finally:
        torch.set_num_threads(threads)


def _child_sums() -> list[float]:
    return tensor_ops.map_large(_numpy_sum, _FORK_TENSORS, lambda t: t.numel())
