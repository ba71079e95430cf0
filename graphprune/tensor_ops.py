"""Per-parameter tensor work of a compile (slice norms, index selection, copies) done in numpy.

Why: compile touches every parameter a few times with small memory-bound ops. Through torch each one
is an intra-op parallel region; hundreds of them cost more in thread synchronisation than in work,
and on a loaded machine a region waits for a descheduled worker (measured: the L2 slice norms of
EfficientNet-B7 take 1-3 s with torch's 2 threads, 0.05-0.2 s in numpy). numpy runs these ops on the
calling thread. Results are the same: selection and copies are bit-identical to torch's; norms agree to
float32 rounding (measured 1-2e-6 relative, torch's own reduction is within 2e-5). Tensors numpy cannot view
(other devices, bfloat16, conjugate views) take the torch path. Results live in memory torch allocated
(64-byte aligned, like every tensor a model is built or loaded with), numpy only writes into it: a
weight numpy allocated is 16-byte aligned, and a pruned model should not differ from its reloaded
copy in anything a kernel may care about.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")
R = TypeVar("R")


def as_numpy(tensor: torch.Tensor) -> np.ndarray | None:
    """A numpy view of ``tensor``'s data (no copy), or None when numpy cannot view it."""
    if tensor.device.type != "cpu" or tensor.dtype in (torch.bfloat16, torch.complex32) or tensor.is_conj() \
            or tensor.is_neg():
        return None
    try:
        return tensor.detach().numpy()
    except (RuntimeError, TypeError):
        return None


def take(tensor: torch.Tensor, dim: int, index: np.ndarray) -> torch.Tensor:
    """``tensor.detach().index_select(dim, index)``: a new contiguous tensor, the same values."""
    array = as_numpy(tensor)
    if array is None:
        return tensor.detach().index_select(dim, torch.as_tensor(index, dtype=torch.long))
    index = np.asarray(index, dtype=np.int64)
    shape = list(array.shape)
    shape[dim] = len(index)
    out = torch.empty(shape, dtype=tensor.dtype)  # torch's allocator: 64-byte aligned, as the weights it loads
    np.take(array, index, axis=dim, out=out.numpy())
    return out


def copy(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor.detach().clone()``: same values, same strides, new storage."""
    array = as_numpy(tensor)
    if array is None:
        return tensor.detach().clone()
    out = torch.empty_like(tensor, device="cpu", requires_grad=False)  # same strides where they are dense
    np.copyto(out.numpy(), array)
    return out


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity in ``tensor``. A finite sum has only finite terms (an infinity or NaN absorbs
    every addition), so one reduction decides; only a sum that overflows is settled element-wise."""
    array = as_numpy(tensor)
    if array is None:
        t = tensor.detach()
        return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.sum())) or bool(np.isfinite(array).all())


def has_nan(tensor: torch.Tensor) -> bool:
    """A NaN in ``tensor``: a NaN term makes the sum NaN; a NaN sum without one (inf - inf) is settled
    element-wise."""
    array = as_numpy(tensor)
    if array is None:
        t = tensor.detach()
        return bool(torch.isnan(t.sum())) and bool(t.isnan().any())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isnan(array.sum())) and bool(np.isnan(array).any())


def slice_norms(tensor: torch.Tensor, dims: list[int], p: int) -> dict[int, np.ndarray]:
    """Per ``dim`` in ``dims``: the p-norm (p = 1 or 2) of every slice along it, i.e. reduced over all
    other dims, as float64. A 1-d tensor's slices are its entries (their absolute values)."""
    array = as_numpy(tensor)
    if array is None or p not in (1, 2) or not np.issubdtype(array.dtype, np.floating):
        return _torch_slice_norms(tensor, dims, p)
    out = {}
    for d in dims:
        if array.ndim <= 1:
            out[d] = np.abs(array).astype(np.float64)
            continue
        rows = array.reshape(int(np.prod(array.shape[:d], dtype=np.int64)), array.shape[d], -1)
        acc = np.float64 if rows.shape[0] * rows.shape[2] > _FLOAT32_SUM_MAX else None
        if p == 2:
            out[d] = np.sqrt(np.einsum("aib,aib->i", rows, rows, dtype=acc)).astype(np.float64)
        else:
            out[d] = np.einsum("aib->i", np.abs(rows), dtype=acc).astype(np.float64)
    return out


# Sums up to this many terms accumulate in the tensor's own precision (float32: einsum's blocked sums
# stay within ~2e-6 relative, as torch's do); longer ones in float64 (a casting pass, ~4x slower).
_FLOAT32_SUM_MAX = 1 << 20


def _torch_slice_norms(tensor: torch.Tensor, dims: list[int], p: int) -> dict[int, np.ndarray]:
    with torch.no_grad():
        t = tensor.detach().float()
        return {d: (torch.linalg.vector_norm(t, ord=p, dim=[o for o in range(t.ndim) if o != d])
                    if t.ndim > 1 else t.abs()).double().cpu().numpy() for d in dims}


# ---------------------------------------------------------------------------------------------------
# Large tensors on worker threads.
#
# Why: numpy reductions and torch's index_select release the GIL, so a large tensor's memory-bound work
# can run on a second core while Python carries on. Coarse-grained (one task per large tensor) this
# keeps both cores busy without the per-op synchronisation that torch's own intra-op threads cost on
# hundreds of small tensors. Small tensors stay on the calling thread: handing them to a worker costs
# more in GIL traffic than the work (measured on EfficientNet-B7: 0.035 s inline, 0.05-0.07 s pooled).

PARALLEL_MIN_NUMEL = 1 << 18
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (process id, threads) the pool was made for


def _workers() -> ThreadPoolExecutor | None:
    """The shared pool, sized by torch's thread setting; a new one when that setting changes, and in a
    forked child, whose copy of the parent's pool has no threads behind it (work would never run)."""
    global _pool, _pool_key
    threads = torch.get_num_threads()
    if threads < 2:
        return None
    key = (os.getpid(), threads)
    if _pool is None or _pool_key != key:
        if _pool is not None and _pool_key is not None and _pool_key[0] == key[0]:
            _pool.shutdown(wait=False)  # this process's pool, made for another thread count
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="graphprune")
        _pool_key = key
        atexit.register(_pool.shutdown, wait=False)
    return _pool


def submit_large(fn: Callable[[T], R], items: Iterable[T], numel: Callable[[T], int]) -> list[Future[R] | R]:
    """``fn`` over ``items``: large items (``numel(item) >= PARALLEL_MIN_NUMEL``) start on worker
    threads and come back as futures; small ones are computed here, in order, while those run.
    ``gather`` resolves the list. Results are the same as ``[fn(x) for x in items]``."""
    pool = _workers()
    items = list(items)
    out: list[Future[R] | R | None] = [None] * len(items)
    for i, item in enumerate(items):
        if pool is not None and numel(item) >= PARALLEL_MIN_NUMEL:
            out[i] = pool.submit(fn, item)
    for i, item in enumerate(items):
        if out[i] is None:
            out[i] = fn(item)
    return out  # type: ignore[return-value]


def gather(results: list[Future[R] | R]) -> list[R]:
    """The values of ``submit_large``'s list (waits for the workers; re-raises their errors)."""
    return [r.result() if isinstance(r, Future) else r for r in results]


def map_large(fn: Callable[[T], R], items: Iterable[T], numel: Callable[[T], int]) -> list[R]:
    """``[fn(x) for x in items]`` with large items on worker threads (see ``submit_large``)."""
    return gather(submit_large(fn, items, numel))
