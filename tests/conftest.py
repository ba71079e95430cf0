import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def sweep_mode() -> str:
    """GRAPHPRUNE_SWEEP=ci (default: bounded sweeps) or full (every torchvision model and timm family)."""
    return os.environ.get("GRAPHPRUNE_SWEEP", "ci")
