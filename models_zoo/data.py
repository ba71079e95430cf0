"""Small real and synthetic image-classification tasks for data-driven pruning (no downloads).

Why: pruning at initialisation (SNIP, GraSP, PX) and the benchmarks need real batches of (input,
target), and the test machines have no network. scikit-learn bundles the 8x8 *digits* dataset (1797
handwritten digits, 10 classes); it is upsampled (bilinear) to a small image size and replicated to 3
channels so the zoo's CIFAR models run on it unchanged. Digits is easy (a small CNN reaches ~98 %),
so *shapes* is a procedural 10-class task that is harder: anti-aliased disks, rings, squares, hollow
squares, triangles, plus signs, X signs, horizontal and vertical stripes and checkerboards at random
position, size, rotation, colour and contrast, over a noisy gradient background with a distractor blob.

Everything is deterministic in ``seed``. ``Batches`` is a re-iterable loader: ``iter(batches)`` always
yields the same order (so several passes read the same first batch); ``batches.epoch(e)`` gives the
shuffled order of epoch ``e`` for training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CLASSES = 10
SHAPE_NAMES = ("disk", "ring", "square", "hollow-square", "triangle", "plus", "x", "h-stripes", "v-stripes",
               "checkerboard")


@dataclass(frozen=True)
class Batches:
    """(input, target) batches over in-memory tensors; deterministic given ``seed``."""

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int = 64
    shuffle: bool = True
    seed: int = 0

    def epoch(self, index: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100003 + index))
                 if self.shuffle else torch.arange(n))
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size


@dataclass(frozen=True)
class Task:
    name: str
    train: Batches
    test: Batches
    num_classes: int
    input_shape: tuple[int, ...]  # (1, C, H, W)


def class_balanced(x: torch.Tensor, y: torch.Tensor, per_class: int,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` random examples of every class (sorted by class), deterministic in ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    idx = torch.cat(picks)
    return x[idx], y[idx]


def _split(n: int, test_fraction: float, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: the same fraction of every class goes to the test set."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.extend(idx[:round(len(idx) * test_fraction)])
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train.mean((0, 2, 3), keepdim=True)
    std = train.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _task(name: str, x: torch.Tensor, y: torch.Tensor, train_idx: np.ndarray, test_idx: np.ndarray,
          batch_size: int, seed: int) -> Task:
    tr, te = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    xtr, xte = _standardise(x[tr], x[te])
    return Task(name, Batches(xtr, y[tr], batch_size, True, seed), Batches(xte, y[te], 256, False, seed),
                CLASSES, (1, *x.shape[1:]))


def digits_task(size: int = 16, channels: int = 3, batch_size: int = 64, test_fraction: float = 0.25,
                seed: int = 0) -> Task:
    """scikit-learn's digits, upsampled to ``size`` x ``size``, stratified train/test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    x = images.expand(-1, channels, -1, -1).contiguous()
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    train_idx, test_idx = _split(len(y), test_fraction, bunch.target, seed)
    return _task("digits", x, y, train_idx, test_idx, batch_size, seed)


def _shape_mask(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Coverage in [0, 1] of one class-``label`` shape, rendered at 4x and averaged (anti-aliasing)."""
    hi = size * 4
    yy, xx = (np.mgrid[0:hi, 0:hi] + 0.5) / hi
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.2, 0.34)
    turn = {5: rng.uniform(-0.35, 0.35), 6: np.pi / 4 + rng.uniform(-0.35, 0.35),
            7: rng.uniform(-0.4, 0.4), 8: np.pi / 2 + rng.uniform(-0.4, 0.4)}.get(label, rng.uniform(0, 2 * np.pi))
    u0, v0 = (xx - cx) / r, (yy - cy) / r
    u, v = np.cos(turn) * u0 + np.sin(turn) * v0, -np.sin(turn) * u0 + np.cos(turn) * v0
    radius, box = np.hypot(u, v), np.maximum(np.abs(u), np.abs(v))
    period = rng.uniform(0.55, 0.9)  # stripes/checkers: cycles per unit radius
    phase = rng.uniform(0, 2 * np.pi)
    masks = {
        0: radius < 1,
        1: (radius > 0.55) & (radius < 1),
        2: box < 0.8,
        3: (box > 0.45) & (box < 0.8),
        4: (v > -0.5) & (np.sqrt(3) * u - v < 1) & (-np.sqrt(3) * u - v < 1),
        5: ((np.abs(u) < 0.28) & (np.abs(v) < 1)) | ((np.abs(v) < 0.28) & (np.abs(u) < 1)),
        6: ((np.abs(u) < 0.28) & (np.abs(v) < 1)) | ((np.abs(v) < 0.28) & (np.abs(u) < 1)),
        7: np.sin(2 * np.pi * v / period + phase) > 0,
        8: np.sin(2 * np.pi * v / period + phase) > 0,
        9: np.sin(2 * np.pi * u / period + phase) * np.sin(2 * np.pi * v / period) > 0,
    }
    return masks[label].astype(np.float32).reshape(size, 4, size, 4).mean((1, 3))


def _render(label: int, rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """One image: shape in a random colour over a random background colour, a linear gradient, a
    distractor blob and Gaussian noise; the colour difference has a random sign and magnitude >= 0.5 per channel."""
    mask = _shape_mask(label, rng, size)
    background = rng.uniform(0, 1, channels)
    delta = rng.uniform(0.5, 1.0, channels) * rng.choice([-1, 1], channels)
    yy, xx = np.mgrid[0:size, 0:size] / size
    gradient = rng.normal(0, 0.25) * (xx - 0.5) + rng.normal(0, 0.25) * (yy - 0.5)
    blob = np.exp(-(((xx - rng.uniform()) ** 2 + (yy - rng.uniform()) ** 2) / (2 * rng.uniform(0.03, 0.08) ** 2)))
    image = (background[:, None, None] + delta[:, None, None] * mask + gradient
             + rng.normal(0, 0.3, channels)[:, None, None] * blob)
    return (image + rng.normal(0, rng.uniform(0.05, 0.2), image.shape)).astype(np.float32)


def shapes_task(size: int = 16, channels: int = 3, train: int = 3000, test: int = 1000, batch_size: int = 64,
                seed: int = 0) -> Task:
    """The procedural shapes task: ``train`` / ``test`` images, classes balanced in each."""
    rng = np.random.default_rng(seed)
    n = train + test
    labels = np.concatenate([rng.permutation(np.arange(train) % CLASSES), rng.permutation(np.arange(test) % CLASSES)])
    x = torch.as_tensor(np.stack([_render(int(c), rng, size, channels) for c in labels]))
    y = torch.as_tensor(labels, dtype=torch.long)
    return _task("shapes", x, y, np.arange(train), np.arange(train, n), batch_size, seed)


TASKS = {"digits": digits_task, "shapes": shapes_task}


def load_dataset(name: str = "digits", batch_size: int = 64, image_size: int = 16, split: str = "train",
                 seed: int = 0) -> Batches:
    """The ``split`` batches of task ``name`` (a plan's ``[data]`` table: name, batch_size, image_size)."""
    if name not in TASKS:
        raise ValueError(f"unknown dataset '{name}' (known: {', '.join(sorted(TASKS))})")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    task = TASKS[name](size=image_size, seed=seed)
    return dataclasses.replace(getattr(task, split), batch_size=batch_size)
