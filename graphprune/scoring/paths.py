"""Path criteria: SynFlow and PX (Path eXclusion), single rounds and the iterative schedule.

SynFlow (Tanaka et al. 2020): ``R_SF = 1^T (prod |W_l|) 1`` on an all-ones input through the
linearised copy with absolute weights; ``S = |theta * dR_SF/dtheta|``. Data-free.

PX (Iurada et al. 2024), one round, as summarised in ``docs/pai.md``:
1. run the masked model on a class-balanced batch ``x`` and record every activation's gate;
2. ``z1``: the linearised copy with every *kept* scored weight set to 1 and every pruned one 0 (the
   mask, as the reference implementation, whose masked layers multiply the all-ones weight by their
   ``weight_mask``; ``masked_data_copy=False``: every weight 1, graphprune's earlier behaviour), norm
   scales 1, the recorded gates applied, fed ``x**2``; no gradient;
3. ``z2``: the linearised copy with squared (masked) weights and squared norm scales, identity gates,
   fed ones;
4. ``R = sum over samples and outputs of z1 * z2``; ``S = |dR/d(theta**2)| * theta**2 >= 0``.

For a bias-free ReLU network without skip connections both criteria are conserved: every layer's
scores sum to R (R is linear in each layer's weights), so no layer can be pruned away before the
others (tested). Computations run in float64: path sums grow like fan-in ** depth.
"""

from __future__ import annotations

import torch
from torch import nn

from graphprune.scoring.copies import (
    GateStore,
    installed_masks,
    linear_copy,
    norm_scales,
    ones_copy,
    recording_copy,
    run,
)
from graphprune.scoring.masks import iterate
from graphprune.scoring.targets import Masks, Scores, masked_values, prunable_weights


class PathScorer:
    """Builds the private copies once; each call scores one round for the given masks.

    ``masked_data_copy`` (default True, the reference implementation's behaviour): PX's data copy
    computes with the 0/1 keep mask as weights, so a pruned weight carries no path in ``z1`` in any
    later round; False: every weight is 1 there, whatever the masks."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float64, masked_data_copy: bool = True) -> None:
        self.model, self.dtype, self.masked_data_copy = model, dtype, masked_data_copy
        self.store = GateStore()
        self.linear = linear_copy(model, self.store, dtype)
        self.scales = norm_scales(self.linear)
        self.theta = masked_values(self.linear, None, dtype)  # biases already zero: weights only
        self.installed = installed_masks(self.linear)  # weight_mask buffers of already-masked layers
        self._recorder: nn.Module | None = None
        self._ones: nn.Module | None = None
        self._data: nn.Module | None = None

    @property
    def recorder(self) -> nn.Module:
        if self._recorder is None:
            self._recorder = recording_copy(self.model, self.store)
        return self._recorder

    @property
    def ones(self) -> nn.Module:
        if self._ones is None:
            self._ones = ones_copy(self.linear, self.store)
        return self._ones

    @property
    def data(self) -> nn.Module:
        """The data copy with its layers kept, for weights substituted per call (the keep masks)."""
        if self._data is None:
            self._data = ones_copy(self.linear, self.store, substitute=True)
        return self._data

    def data_weights(self, masks: Masks | None) -> Scores | None:
        """The data copy's weights for ``masks``: 1 where kept, 0 where pruned (by ``masks`` or by a
        layer's own ``weight_mask``); None when every weight is 1 (the cheap all-ones copy is exact)."""
        keep = {n: m.clone() for n, m in self.installed.items()}
        for n, m in (masks or {}).items():
            if n in self.theta:
                keep[n] = keep[n] & m.bool() if n in keep else m.bool()
        if not self.masked_data_copy or all(bool(m.all()) for m in keep.values()):
            return None
        return {n: keep[n].to(self.dtype) if n in keep else torch.ones_like(t) for n, t in self.theta.items()}

    def data_paths(self, masks: Masks | None, x: torch.Tensor) -> list[torch.Tensor]:
        """``z1``: the gated data copy on ``x**2`` (gates recorded before), summed over the batch."""
        weights = self.data_weights(masks)
        self.store.apply = True
        x2 = x.to(self.dtype) ** 2
        z = run(self.ones, {}, x2) if weights is None else run(self.data, weights, x2)
        return [t.sum(0, keepdim=True) for t in z]

    def _weights(self, masks: Masks | None) -> Scores:
        if not masks:
            return dict(self.theta)
        return {n: t * masks[n].to(t.dtype) if n in masks else t for n, t in self.theta.items()}

    def synflow(self, masks: Masks | None, input_shape: tuple[int, ...]) -> Scores:
        theta = self._weights(masks)
        w = {n: t.abs().requires_grad_() for n, t in theta.items()}
        self.store.apply = False
        scales = {n: s.abs() for n, s in self.scales.items()}
        ones = torch.ones((1, *input_shape[1:]), dtype=self.dtype)
        r = sum(o.sum() for o in run(self.linear, {**w, **scales}, ones))
        return _times_grad(r, w)

    def px(self, masks: Masks | None, x: torch.Tensor) -> Scores:
        theta = self._weights(masks)
        real = dict(prunable_weights(self.recorder))
        with torch.no_grad():
            self.store.gates.clear()
            run(self.recorder, {n: theta[n].to(real[n].dtype) for n in real}, x.to(next(iter(real.values())).dtype))
            z1 = self.data_paths(masks, x)
            top = max(float(z.abs().max()) for z in z1)
            z1 = [z / top for z in z1] if top > 0 else z1
        self.store.apply = False
        squared = {n: (t * t).requires_grad_() for n, t in theta.items()}
        scales = {n: s * s for n, s in self.scales.items()}
        z2 = run(self.linear, {**squared, **scales}, torch.ones((1, *x.shape[1:]), dtype=self.dtype))
        r = sum((a * b).sum() for a, b in zip(z1, z2))
        return _times_grad(r, squared)


def path_count(model: nn.Module, masks: Masks, input_shape: tuple[int, ...]) -> float:
    """How many input->output paths the masked network keeps (summed over input positions and
    outputs): the linearised copy with every kept weight 1, every pruned weight 0 and unit norm
    scales, fed ones. Zero means pruning disconnected the output from the input (layer collapse)."""
    store = GateStore()
    copy = linear_copy(model, store)
    weights = {n: masks[n].double() if n in masks else torch.ones_like(t)
               for n, t in masked_values(copy, None).items()}
    unit = {n: torch.ones_like(s) for n, s in norm_scales(copy).items()}
    with torch.no_grad():
        out = run(copy, {**weights, **unit}, torch.ones((1, *input_shape[1:]), dtype=torch.float64))
    return float(sum(o.sum() for o in out))


def _times_grad(r: torch.Tensor, leaves: Scores) -> Scores:
    """``|dr/dw| * |w|`` per leaf (zeros where ``r`` does not depend on it)."""
    if not torch.isfinite(r):
        raise FloatingPointError("path sum overflowed even in float64; the network is too deep for this criterion")
    grads = torch.autograd.grad(r, list(leaves.values()), allow_unused=True)
    return {n: (g.abs() * w.detach().abs()) if g is not None else torch.zeros_like(w)
            for (n, w), g in zip(leaves.items(), grads)}


def synflow_scores(model: nn.Module, input_shape: tuple[int, ...], masks: Masks | None = None,
                   density: float | None = None, rounds: int = 100) -> Scores:
    """SynFlow scores. With ``density``: iterative pruning over ``rounds`` (exponential schedule),
    returning the last round's scores; without: one round on the model masked by ``masks``."""
    scorer = PathScorer(model)
    if density is None:
        return scorer.synflow(masks, input_shape)
    return iterate(lambda m: scorer.synflow(m, input_shape), density, rounds, masks)[0]


def px_scores(model: nn.Module, batch: torch.Tensor, masks: Masks | None = None,
              density: float | None = None, rounds: int = 100, masked_data_copy: bool = True) -> Scores:
    """PX scores on ``batch`` (a class-balanced batch of inputs). ``density``/``rounds`` as SynFlow;
    ``masked_data_copy`` as ``PathScorer``."""
    scorer = PathScorer(model, masked_data_copy=masked_data_copy)
    if density is None:
        return scorer.px(masks, batch)
    return iterate(lambda m: scorer.px(m, batch), density, rounds, masks)[0]
