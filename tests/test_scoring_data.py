"""The zoo's data tasks: deterministic, stratified, standardised; shapes is harder than digits;
class-balanced pruning batches."""

from __future__ import annotations

import pytest
import torch

from graphprune.scoring import class_balanced_batch
from models_zoo.data import Batches, class_balanced, digits_task, shapes_task


@pytest.fixture(scope="module")
def digits():
    return digits_task(size=16)


@pytest.fixture(scope="module")
def shapes():
    return shapes_task(size=16, train=400, test=200)


def nearest_centroid_accuracy(task) -> float:
    x, y = task.train.x.flatten(1), task.train.y
    centroids = torch.stack([x[y == c].mean(0) for c in range(task.num_classes)])
    prediction = torch.cdist(task.test.x.flatten(1), centroids).argmin(1)
    return float((prediction == task.test.y).float().mean())


def test_digits_is_the_real_dataset_upsampled_and_split_by_class(digits):
    assert digits.input_shape == (1, 3, 16, 16) and len(digits.train.y) + len(digits.test.y) == 1797
    assert torch.equal(digits.train.x[:, 0], digits.train.x[:, 2])  # grey replicated to 3 channels
    counts = torch.bincount(digits.test.y)
    assert counts.min() >= 44 and counts.max() <= 46  # 25 % of each class
    assert abs(float(digits.train.x.mean())) < 1e-4 and float(digits.train.x.std()) == pytest.approx(1, abs=1e-3)
    again = digits_task(size=16)
    assert torch.equal(again.train.x, digits.train.x) and torch.equal(again.test.y, digits.test.y)
    assert not torch.equal(digits_task(size=16, seed=1).test.y, digits.test.y)


def test_shapes_is_deterministic_balanced_and_harder_than_digits(digits, shapes):
    assert torch.bincount(shapes.train.y).tolist() == [40] * 10
    assert torch.equal(shapes_task(size=16, train=400, test=200).train.x, shapes.train.x)
    assert not torch.equal(shapes_task(size=16, train=400, test=200, seed=1).train.x, shapes.train.x)
    easy, hard = nearest_centroid_accuracy(digits), nearest_centroid_accuracy(shapes)
    assert easy > 0.8 and hard < 0.4, (easy, hard)


def test_batches_repeat_order_per_epoch_and_cover_everything(shapes):
    loader = Batches(shapes.train.x, shapes.train.y, batch_size=64, seed=3)
    first, second = [y for _, y in loader], [y for _, y in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, second)) and len(first) == len(loader) == 7
    epoch1 = torch.cat([y for _, y in loader.epoch(1)])
    assert not torch.equal(epoch1, torch.cat(first))
    assert sorted(torch.cat(first).tolist()) == sorted(shapes.train.y.tolist())


def test_class_balanced_batches(shapes):
    x, y = class_balanced(shapes.train.x, shapes.train.y, 5, seed=0)
    assert torch.bincount(y).tolist() == [5] * 10 and x.shape == (50, 3, 16, 16)
    bx, by = class_balanced_batch(shapes.train, per_class=3)
    assert by.tolist() == [c for c in range(10) for _ in range(3)]
    stop_early = class_balanced_batch(shapes.train, per_class=1, num_classes=10)
    assert stop_early[1].tolist() == list(range(10))
