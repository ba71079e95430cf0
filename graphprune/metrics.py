"""Parameter and MAC counts. MACs come from torch's FlopCounterMode run under fake tensors, so
counting a large model costs no arithmetic; MACs = FLOPs / 2 for the matrix ops it counts
(conv, linear, matmul, bmm, attention)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, example_inputs: tuple[Any, ...]) -> int:
    was_training = module.training
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        try:
            mode = FakeTensorMode(allow_non_fake_inputs=True)
            fake = tuple(mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in example_inputs)
            with mode, counter, torch.no_grad():
                module(*fake)
        except Exception:
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                module(*example_inputs)
        return int(counter.get_total_flops() // 2)
    finally:
        module.train(was_training)
