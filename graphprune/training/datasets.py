"""From the user's datasets to the batch sources passes read: training and validation, deterministic.

Why not a plain shuffled ``DataLoader``: scoring passes iterate ``state.data`` and expect the same first
batches every time (a PX pruning batch, a Taylor score), and training resumes need the batch at step g
to depend only on the seed and g. ``DatasetBatches`` is a re-iterable source over a map-style Dataset:
``iter()`` is always epoch 0's order, ``epoch(e)`` is a permutation drawn from (seed, e)
(``graphprune.training.data.BatchStream`` uses it), loaded through a ``DataLoader`` with the plan's
workers. ``split`` holds out a validation fraction, stratified by class when the dataset says its
targets (``targets`` attribute, as torchvision's ``ImageFolder`` does), deterministic in the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset
from torch.utils.data.dataloader import default_collate

from graphprune.errors import InputError
from graphprune.training.data import epoch_order


@dataclass(frozen=True)
class DatasetBatches:
    """(input, target) batches over a map-style dataset; see the module docstring."""

    dataset: Dataset
    batch_size: int = 64
    shuffle: bool = True
    seed: int = 0
    workers: int = 0
    collate_fn: Any = field(default=default_collate, compare=False, repr=False)

    def epoch(self, index: int) -> Iterator[Any]:
        order = epoch_order(len(self.dataset), self.seed, index, self.shuffle)
        chunks = [c.tolist() for c in order.split(self.batch_size)]
        yield from DataLoader(self.dataset, batch_sampler=chunks, num_workers=self.workers,
                              collate_fn=self.collate_fn,
                              generator=torch.Generator().manual_seed(self.seed * 7919 + index))

    def __iter__(self) -> Iterator[Any]:
        return self.epoch(0)

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)


@dataclass(frozen=True)
class Data:
    """What a plan's ``[data]`` resolves to: training batches, optional validation batches, and a
    JSON-able description for the report (source, sizes, preprocessing)."""

    train: Any
    val: Any = None
    record: dict[str, Any] = field(default_factory=dict)


def targets_of(dataset: Dataset) -> list[int] | None:
    """The class of every example when the dataset declares them (ImageFolder, a Subset of one)."""
    if isinstance(dataset, Subset):
        inner = targets_of(dataset.dataset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is None or len(targets) != len(dataset):
        return None
    return [int(t) for t in targets]


def split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Subset, Subset]:
    """(train, validation) subsets: ``fraction`` of every class (of all examples when classes are not
    declared) held out, at least one example per class that has two."""
    n = len(dataset)
    targets = targets_of(dataset)
    gen = torch.Generator().manual_seed(seed)
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(targets if targets is not None else [0] * n):
        groups.setdefault(t, []).append(i)
    held: list[int] = []
    for members in groups.values():
        count = round(len(members) * fraction)
        count = max(count, 1) if len(members) > 1 else count
        picks = torch.randperm(len(members), generator=gen)[:count].tolist()
        held.extend(members[p] for p in picks)
    chosen = set(held)
    return Subset(dataset, [i for i in range(n) if i not in chosen]), Subset(dataset, sorted(held))


def batches(source: Any, what: str, *, batch_size: int, workers: int, shuffle: bool, seed: int) -> Any:
    """A batch source for ``source``: a DataLoader as it is, a map-style Dataset as ``DatasetBatches``."""
    if source is None or isinstance(source, DataLoader):
        return source
    if isinstance(source, IterableDataset):
        raise InputError(f"{what}: an IterableDataset has no length or order to resume from; give a map-style "
                         "Dataset or a DataLoader over one")
    if isinstance(source, Dataset) and hasattr(source, "__len__"):
        if len(source) == 0:
            raise InputError(f"{what}: the dataset is empty")
        return DatasetBatches(source, batch_size, shuffle, seed, workers)
    raise InputError(f"{what}: expected a torch Dataset or DataLoader, got {type(source).__name__}")


def with_validation(train: Any, val: Any, fraction: float | None, what: str, *, batch_size: int, workers: int,
                    seed: int) -> Data:
    """Training and validation sources; without a validation set, ``fraction`` of the training set (a
    Dataset, or a DataLoader's dataset) is held out when given."""
    record: dict[str, Any] = {}
    if val is None and fraction:
        dataset = train.dataset if isinstance(train, DataLoader) else train
        if not isinstance(dataset, Dataset) or isinstance(dataset, IterableDataset):
            raise InputError(f"{what}: val_split needs a map-style Dataset to split, got {type(dataset).__name__}")
        train_part, val = split(dataset, fraction, seed)
        if isinstance(train, DataLoader):
            batch_size, workers = train.batch_size or batch_size, train.num_workers
        train = train_part
        record["val_split"] = fraction
    out_train = batches(train, f"{what} (training)", batch_size=batch_size, workers=workers, shuffle=True, seed=seed)
    out_val = batches(val, f"{what} (validation)", batch_size=batch_size, workers=workers, shuffle=False, seed=seed)
    record.update(train_examples=_size(out_train), val_examples=_size(out_val))
    return Data(out_train, out_val, record)


def _size(source: Any) -> int | None:
    dataset = getattr(source, "dataset", None)
    return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None
