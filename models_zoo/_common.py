"""Shared helpers for the in-repo zoo models.

Why: every zoo model must be bit-for-bit reproducible (pruning tests compare numbers across runs) and
must have *non-trivial* normalisation state. Default BatchNorm statistics (mean 0, var 1, gamma 1,
beta 0) hide bugs: a pass that drops or mis-indexes BN channels still matches the reference if
every channel's affine map is the same. So models are built under a fixed seed, their norm
affines are randomised, and BatchNorm running statistics are calibrated on seeded random inputs
so activations stay well scaled even in deep residual stacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

DEFAULT_SEED = 0
ImageInputs = tuple[torch.Tensor, ...]


@contextlib.contextmanager
def seeded(seed: int = DEFAULT_SEED) -> Iterator[None]:
    """Run the body with the global CPU RNG seeded, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def random_inputs(shape: Sequence[int], seed: int = DEFAULT_SEED) -> ImageInputs:
    """One deterministic standard-normal tensor of ``shape`` (from its own Generator), as a 1-tuple."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator),)


def example_image(size: int, channels: int = 3, batch: int = 1, seed: int = DEFAULT_SEED) -> ImageInputs:
    """A deterministic ``(batch, channels, size, size)`` input, as the 1-tuple ``load`` returns."""
    return random_inputs((batch, channels, size, size), seed)


def init_weights(model: nn.Module) -> None:
    """Kaiming convs, small-normal linears, and randomised (but deterministic) norm affines."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.normal_(module.bias, std=0.05)
        elif isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.05)
            if module.bias is not None:
                nn.init.normal_(module.bias, std=0.05)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if module.weight is not None:
                nn.init.uniform_(module.weight, 0.5, 1.5)
            if module.bias is not None:
                nn.init.normal_(module.bias, std=0.1)


@torch.no_grad()
def paper_init(model: nn.Module) -> nn.Module:
    """The initialisation of the pruning-at-initialisation papers (SynFlow's and PX's reference code):
    conv/linear weights Kaiming-normal (fan-in, ReLU gain), biases 0, norm scales 1 and shifts 0,
    BatchNorm statistics reset (mean 0, variance 1). Unlike ``finish``, nothing is randomised or
    calibrated, so PX and its baselines score the network they were designed for. (The reference
    leaves the classifier's bias at PyTorch's default; its convs have none. Here every bias is 0.)"""
    for module in model.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
                module.reset_running_stats()
    return model


INITS = ("zoo", "paper")


def initialised(model: nn.Module, size: int, init: str = "zoo") -> tuple[nn.Module, ImageInputs]:
    """``finish`` (init "zoo": randomised norms, calibrated statistics) or ``paper_init`` ("paper")."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "zoo":
        return finish(model, size)
    return paper_init(model).eval(), example_image(size)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, size: int, batches: int = 1, batch_size: int = 8) -> None:
    """Set BatchNorm running stats to the cumulative average over seeded random batches.

    Leaves the model in eval mode. A no-op for models without BatchNorm.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        model.eval()
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    model.train()
    for index in range(batches):
        (x,) = example_image(size, batch=batch_size, seed=DEFAULT_SEED + 1 + index)
        model(x)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


def finish(model: nn.Module, size: int) -> tuple[nn.Module, ImageInputs]:
    """Initialise, calibrate and pair a freshly built image classifier with its example input."""
    init_weights(model)
    calibrate_batchnorm(model, size)
    return model.eval(), example_image(size)


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same'-style padding) followed by BatchNorm: the basic unit of the CNNs here."""
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout))
