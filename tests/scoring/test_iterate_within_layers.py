"""``iterate_within_layers``: a criterion's ranking run at given per-layer densities (the PX ablation)."""

import pytest
import torch

from graphprune.scoring import iterate, iterate_within_layers, layer_densities


def _static_scores(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.rand(8, 4, 3, 3, generator=g), "b.weight": torch.rand(16, 8, generator=g) * 0.5,
            "c.weight": torch.rand(10, 16, generator=g) * 2}


def test_static_scores_at_their_own_global_densities_give_the_global_mask():
    """With scores that ignore the mask, a global top-k keeps in each layer that layer's top entries, so
    ranking within the layers at the global mask's densities must reproduce it exactly."""
    scores = _static_scores()
    _, global_ = iterate(lambda m: scores, 0.1, rounds=7)
    _, within = iterate_within_layers(lambda m: scores, layer_densities(global_), rounds=7)
    assert layer_densities(global_) != {n: 0.1 for n in scores}  # the global threshold chose uneven densities
    for n in scores:
        assert torch.equal(within[n], global_[n]), n


def test_final_counts_are_the_targets_and_pruned_weights_never_return():
    scores = _static_scores(1)
    targets = {"a.weight": 0.05, "b.weight": 0.0, "c.weight": 0.5}
    seen: list[dict[str, torch.Tensor]] = []
    noise = torch.Generator().manual_seed(2)

    def score(masks):  # a criterion whose ranking changes every round
        if masks is not None:
            seen.append(masks)
        return {n: s + torch.rand(s.shape, generator=noise) for n, s in scores.items()}

    _, masks = iterate_within_layers(score, targets, rounds=5)
    seen.append(masks)
    for n, s in scores.items():
        assert int(masks[n].sum()) == round(targets[n] * s.numel()), n
    for before, after in zip(seen, seen[1:]):
        for n in scores:
            assert not (after[n] & ~before[n]).any(), f"{n}: a pruned weight came back"
            assert int(after[n].sum()) <= int(before[n].sum())


def test_densities_must_name_the_scored_layers():
    with pytest.raises(ValueError, match="densities name"):
        iterate_within_layers(lambda m: _static_scores(), {"a.weight": 0.5}, rounds=2)
