"""A deterministic batch stream: the batch a run trains on at global step g depends only on the seed and g.

Why: resuming after a kill must see exactly the batches the uninterrupted run would have seen, without
replaying the run. Epoch e's order is a permutation drawn from a generator seeded with (seed, e); the
step's position in it is g mod steps-per-epoch, so a checkpoint only needs the step (it also records
seed/epoch/position for humans).

Sources: a map-style ``DataLoader`` (its dataset, batch size, collate function, workers and shuffle
flag are reused; the order comes from here), a map-style ``Dataset`` plus a batch size, a sized
sequence of ready batches (their order is shuffled per epoch), a sized source with an ``epoch(e)``
method yielding epoch e's batches (``models_zoo.data.Batches``: the source owns the order), or any
sized iterable of batches (iterated in its own order). Resuming skips the consumed batches of the
epoch, which is bit-for-bit when the source repeats itself for the same epoch.

Distributed: the source's batch size is the *global* batch. Each rank takes its contiguous share of
every global batch, so N ranks see exactly the batches one process sees (and DDP's gradient average
equals the single-process gradient for mean losses). An incomplete last global batch is dropped when
the loader says ``drop_last`` or when running on more than one rank.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler
from torch.utils.data.dataloader import default_collate

from graphprune.errors import InputError
from graphprune.training.identity import describe


def epoch_seed(seed: int, epoch: int) -> int:
    digest = hashlib.sha256(f"graphprune:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))


def rank_share(batch: Any, rank: int, world: int) -> Any:
    """This rank's contiguous share (along dim 0) of every tensor in a (nested) batch."""
    if world == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        return torch.tensor_split(batch, world)[rank]
    if isinstance(batch, (tuple, list)):
        return type(batch)(rank_share(b, rank, world) for b in batch)
    if isinstance(batch, dict):
        return {k: rank_share(v, rank, world) for k, v in batch.items()}
    return batch


class BatchStream:
    """Infinite stream of this rank's batches from a given global step."""

    def __init__(self, source: Any, *, seed: int = 0, batch_size: int | None = None, shuffle: bool | None = None,
                 rank: int = 0, world: int = 1) -> None:
        self.seed, self.rank, self.world = seed, rank, world
        self.loader_kwargs: dict[str, Any] = {}
        if isinstance(source, DataLoader) and not isinstance(source.dataset, IterableDataset):
            if source.batch_size is None:
                raise InputError("training data: a DataLoader with a custom batch_sampler is not supported; "
                                 "give a batch_size (the global batch) or a sequence of batches")
            self.kind, self.dataset = "dataset", source.dataset
            self.batch_size = source.batch_size
            self.drop_last = source.drop_last or world > 1
            self.shuffle = isinstance(source.sampler, RandomSampler) if shuffle is None else shuffle
            self.loader_kwargs = {"collate_fn": source.collate_fn, "num_workers": source.num_workers,
                                  "pin_memory": source.pin_memory}
            if not isinstance(source.sampler, (RandomSampler, SequentialSampler)):
                raise InputError("training data: only shuffled or sequential DataLoaders are supported "
                                 f"(got sampler {type(source.sampler).__name__})")
        elif isinstance(source, Dataset) and hasattr(source, "__len__") and batch_size:
            self.kind, self.dataset, self.batch_size = "dataset", source, batch_size
            self.drop_last, self.shuffle = world > 1, True if shuffle is None else shuffle
            self.loader_kwargs = {"collate_fn": default_collate}
        elif callable(getattr(source, "epoch", None)) and hasattr(source, "__len__"):
            self.kind, self.iterable, self.shuffle = "epochs", source, False
        elif isinstance(source, Sequence):
            self.kind, self.batches, self.shuffle = "batches", source, True if shuffle is None else shuffle
        elif hasattr(source, "__len__") and hasattr(source, "__iter__"):
            self.kind, self.iterable, self.shuffle = "iterable", source, False
        else:
            raise InputError(f"training data: expected a DataLoader, a Dataset with a batch size or a sized "
                             f"sequence of (input, target) batches, got {type(source).__name__}")
        if self.steps_per_epoch < 1:
            raise InputError("training data: no complete batch (dataset smaller than the batch size?)")

    @property
    def steps_per_epoch(self) -> int:
        if self.kind == "dataset":
            n = len(self.dataset)
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batches if self.kind == "batches" else self.iterable)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data for a resume: the source's kind and size, the batch size, the steps per
        epoch, and the leaves and a hash of the first global batch in the source's own order (drawn under
        fixed RNG seeds, so random augmentation draws alike; the global RNG states are left untouched)."""
        leaves, _ = pytree.tree_flatten(_seeded(self._first_batch))
        source = {"dataset": getattr(self, "dataset", None), "batches": getattr(self, "batches", None)}
        return {"kind": self.kind, "size": len(source[self.kind] if self.kind in source else self.iterable),
                "batch_size": getattr(self, "batch_size", None), "steps_per_epoch": self.steps_per_epoch,
                "first_batch": [describe(leaf) for leaf in leaves], "hash": _hash(leaves)}

    def _first_batch(self) -> Any:
        if self.kind == "dataset":
            count = min(self.batch_size, len(self.dataset))
            return self.loader_kwargs["collate_fn"]([self.dataset[i] for i in range(count)])
        if self.kind == "batches":
            return self.batches[0]
        return next(iter(self.iterable.epoch(0) if self.kind == "epochs" else self.iterable))

    def position(self, step: int) -> dict[str, int]:
        return {"seed": self.seed, "epoch": step // self.steps_per_epoch, "position": step % self.steps_per_epoch}

    def __call__(self, start_step: int = 0) -> Iterator[Any]:
        epoch, pos = divmod(start_step, self.steps_per_epoch)
        while True:
            yield from self._epoch(epoch, pos)
            epoch, pos = epoch + 1, 0

    def _epoch(self, epoch: int, start: int) -> Iterator[Any]:
        if self.kind == "dataset":
            order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle)
            chunks = [torch.tensor_split(c, self.world)[self.rank].tolist()
                      for c in order.split(self.batch_size)[: self.steps_per_epoch]]
            # its own generator: a DataLoader iterator otherwise draws its workers' base seed from the global
            # RNG, which would make the dropout masks after a resume depend on where the epoch was cut
            workers = torch.Generator().manual_seed(epoch_seed(self.seed + 1, epoch))
            yield from DataLoader(self.dataset, batch_sampler=chunks[start:], generator=workers, **self.loader_kwargs)
        elif self.kind == "batches":
            for i in epoch_order(len(self.batches), self.seed, epoch, self.shuffle)[start:].tolist():
                yield rank_share(self.batches[i], self.rank, self.world)
        else:
            batches = self.iterable.epoch(epoch) if self.kind == "epochs" else self.iterable
            for i, batch in enumerate(batches):
                if i >= start:
                    yield rank_share(batch, self.rank, self.world)


def _seeded(draw: Callable[[], Any]) -> Any:
    """``draw()`` with torch, NumPy and ``random`` seeded to 0; every global RNG state is restored after."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            np.random.seed(0)
            random.seed(0)
            return draw()
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _hash(leaves: list[Any]) -> str:
    digest = hashlib.sha256()
    for leaf in leaves:
        digest.update(describe(leaf).encode())
        if isinstance(leaf, torch.Tensor):
            digest.update(leaf.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(leaf).encode())
    return digest.hexdigest()[:16]
