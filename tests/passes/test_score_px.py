"""score-px: the pass defaults to the reference PX of the paper's code (the data copy computes with the
keep mask, 100 rounds; the formula itself: tests/scoring/test_px_reference.py)."""

from __future__ import annotations


def test_score_px_pass_defaults_to_the_reference_data_copy_and_100_rounds():
    from passes import ScorePx

    assert ScorePx().masked_data_copy is True and ScorePx().rounds == 100
