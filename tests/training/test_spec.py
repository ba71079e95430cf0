"""``graphprune.training.spec``: BatchNorm recalibration averages the statistics of exactly the given
number of batches and leaves the model in eval mode with its momentum restored."""

from __future__ import annotations

import torch
from torch import nn


def test_recalibrate_batchnorm_averages_the_given_batches():
    from graphprune.training.spec import recalibrate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(5, 3, 6, 6, generator=g), None) for _ in range(4)]
    assert recalibrate_batchnorm(model, batches, 3, torch.device("cpu")) == 3
    with torch.no_grad():
        conv = torch.cat([model[0](x) for x, _ in batches[:3]])
    torch.testing.assert_close(model[1].running_mean, conv.mean((0, 2, 3)))
    assert not model.training and model[1].momentum == 0.1
