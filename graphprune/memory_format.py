"""Channels-last copies of a GraphModule, and whether one computes what the original computes.

Why: on CPU, oneDNN runs convolutions on channels-last (NHWC) tensors without the layout reorders
and im2col copies the NCHW path pays, and a pruned network's narrow layers feel those fixed costs
most (docs/latency.md: pruned mobilenet_v2 at batch 16 runs twice as fast channels-last). Converting
the 4-D weights is enough: a convolution whose weight is channels-last returns a channels-last
output, and elementwise ops, BatchNorm and pooling keep it, so the layout flows from the first conv
to the last without a conversion op in the graph. The copy never touches the original's tensors (they
may be the user's), keeps tied tensors tied, and returns every 4-D output leaf contiguous, so a caller
that ``view``\\ s the output sees the strides it always saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from graphprune.copy_on_write import writable
from graphprune.values import TensorInfo, propagate

CHANNELS_LAST = torch.channels_last


def convertible_tensors(gm: nn.Module) -> int:
    """How many distinct 4-D parameters and buffers a channels-last copy would convert."""
    return len({id(t) for t in (*gm.parameters(), *gm.buffers()) if t.ndim == 4})


def channels_last(gm: fx.GraphModule, example_inputs: Sequence[Any]) -> fx.GraphModule:
    """A copy of ``gm`` whose 4-D parameters and buffers are channels-last and whose 4-D output leaves
    are made contiguous; ``gm`` and its tensors are left as they were."""
    clone = writable(gm)
    converted: dict[int, torch.Tensor] = {}
    for module in clone.modules():
        for store in (module._parameters, module._buffers):
            for name, tensor in store.items():
                if tensor is None or tensor.ndim != 4:
                    continue
                if id(tensor) not in converted:
                    data = tensor.detach().contiguous(memory_format=CHANNELS_LAST)
                    converted[id(tensor)] = nn.Parameter(data, tensor.requires_grad) \
                        if isinstance(tensor, nn.Parameter) else data
                store[name] = converted[id(tensor)]
    _contiguous_outputs(clone, example_inputs)
    return clone


def _contiguous_outputs(gm: fx.GraphModule, example_inputs: Sequence[Any]) -> None:
    shapes = propagate(gm, tuple(example_inputs))
    graph = gm.graph
    output = next(n for n in reversed(graph.nodes) if n.op == "output")

    def contiguous(node: fx.Node) -> fx.Node:
        info = shapes.get(node.name)
        if not isinstance(info, TensorInfo) or info.ndim != 4:
            return node
        with graph.inserting_before(output):
            return graph.call_method("contiguous", (node,))

    output.args = fx.node.map_arg(output.args, contiguous)
    gm.recompile()
