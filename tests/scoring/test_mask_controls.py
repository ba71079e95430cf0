"""The shuffled-mask controls keep exactly the densities they claim and scramble the rest."""

import pytest
import torch

from graphprune.scoring.controls import shuffled_masks


def _masks() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    conv = torch.rand(8, 4, 3, 3, generator=g) < torch.linspace(0.05, 0.6, 8).view(8, 1, 1, 1)
    return {"fc.weight": torch.rand(10, 64, generator=g) < 0.1, "conv.weight": conv}


def test_layer_shuffle_keeps_each_layers_count_and_moves_the_kept_positions():
    masks = _masks()
    shuffled = shuffled_masks(masks, seed=1)
    assert list(shuffled) == list(masks)
    for name, mask in masks.items():
        assert shuffled[name].dtype == torch.bool and shuffled[name].shape == mask.shape
        assert int(shuffled[name].sum()) == int(mask.sum())
        assert not torch.equal(shuffled[name], mask)
    per_filter = shuffled["conv.weight"].flatten(1).sum(1)
    assert not torch.equal(per_filter, masks["conv.weight"].flatten(1).sum(1))  # fan-ins are not kept


def test_filter_shuffle_keeps_every_filters_fan_in():
    masks = _masks()
    shuffled = shuffled_masks(masks, seed=1, within="filter")
    for name, mask in masks.items():
        assert torch.equal(shuffled[name].flatten(1).sum(1), mask.flatten(1).sum(1))
        assert not torch.equal(shuffled[name], mask)


def test_shuffles_are_deterministic_in_the_seed_and_independent_of_dict_order():
    masks = _masks()
    reordered = dict(reversed(list(masks.items())))
    a, b, c = shuffled_masks(masks, 3), shuffled_masks(reordered, 3), shuffled_masks(masks, 4)
    assert all(torch.equal(a[n], b[n]) for n in masks)
    assert not all(torch.equal(a[n], c[n]) for n in masks)


def test_an_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="within must be one of layer, filter"):
        shuffled_masks(_masks(), 0, within="kernel")
