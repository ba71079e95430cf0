"""The pruning batch of data-driven criteria: a class-balanced batch drawn from any iterable of
(input, target) batches (PX uses about 10 examples per class)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def class_balanced_batch(data: Iterable[Any], per_class: int = 10,
                         num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` examples of every class, in data order, classes sorted. With
    ``num_classes`` it stops as soon as that many classes are full; without, it reads the whole
    iterable (it cannot know no other class follows). A class with fewer examples gives what it has."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    taken: dict[int, list[torch.Tensor]] = {}
    for item in data:
        x, y = item[0], item[1]
        for xi, yi in zip(x, y.reshape(-1)):
            bucket = taken.setdefault(int(yi), [])
            if len(bucket) < per_class:
                bucket.append(xi)
        if num_classes is not None and len(taken) >= num_classes and \
                all(len(v) >= per_class for v in taken.values()):
            break
    if not taken:
        raise ValueError("the data iterable yielded no examples")
    classes = sorted(taken)
    xs = torch.stack([xi for c in classes for xi in taken[c]])
    ys = torch.tensor([c for c in classes for _ in taken[c]])
    return xs, ys
