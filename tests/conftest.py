import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models: intra-op threads only add overhead on a loaded 2-core runner. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sweep_mode() -> str:
    """GRAPHPRUNE_SWEEP=ci (default: bounded sweeps) or full (every torchvision model and timm family)."""
    return os.environ.get("GRAPHPRUNE_SWEEP", "ci")
