"""Every registered pass leaves its input state untouched (xDSL's ``apply_to_clone`` contract): the
graph's code, every parameter and buffer value of the state's GraphModule and of the user's model, the
module tree, and every other field (masks, keep, scores, weight scores, kept indices, facts, values,
artifacts, ...) read the same after the pass as before. A ``CompileState`` promises that a failed pass
leaves the previous state intact; this is what makes the promise true for a pass that succeeds too.

Each pass gets the first of four input states that meets its requirements (bare, traced, analysed with
scores, masks and a keep decision, or after one removal; each built afresh) on a small model with a residual, a channel
shuffle (so canonicalize rewrites something) and a linear head; data-driven passes get a few batches,
training passes tiny settings. No pass is skipped: a library pass without an input state fails."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import passes  # noqa: F401  (registers the library)
from graphprune.passes import PASSES, run_pipeline
from graphprune.state import CompileState, Options
from passes import (
    Admm,
    Allocate,
    AnalyzeChannels,
    ApplyMasks,
    Canonicalize,
    Emit,
    Finetune,
    Layout,
    MeasureLatency,
    Purify,
    RemoveChannels,
    ScoreGrasp,
    ScoreMagnitude,
    ScorePx,
    ScoreSnip,
    ScoreSynflow,
    ScoreTaylor,
    ScoreWeightMagnitude,
    Trace,
)
from tests.helpers import calibrate

pytestmark = pytest.mark.usefixtures("single_thread")
LIBRARY = sorted(name for name, cls in PASSES.items() if cls.__module__.split(".")[0] == "passes")


class Net(nn.Module):
    """conv-bn-relu, a residual block, a channel shuffle, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.mix = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.body(y))
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle
        return self.head(self.mix(y).mean((2, 3)))


def _configured(tmp_path) -> dict[str, Any]:
    """Tiny settings, and a configuration that makes each pass do something."""
    train = {"progress": False, "device": "cpu", "seed": 0}
    return {
        "admm": Admm(sparsity=0.5, iterations=1, update_every=1, retrain_epochs=0.5, recalibrate_bn=0, **train),
        "finetune": Finetune(epochs=1.0, **train),
        "apply-masks": ApplyMasks(criterion="magnitude", density=0.5),
        "purify": Purify(eta=0.3, sigma=1e9),
        "emit": Emit(paths=(str(tmp_path / "model.py"),)),
        "layout": Layout(memory_format="channels_last"),
        "measure-latency": MeasureLatency(batches=(1,), repeats=(1,), warmup=0),
        "score-px": ScorePx(rounds=2, per_class=1, num_classes=5),
        "score-synflow": ScoreSynflow(rounds=2),
        "score-snip": ScoreSnip(rounds=2),
        "score-grasp": ScoreGrasp(),
        "score-taylor": ScoreTaylor(train=True),
    }


AT_LEAST = {"purify": 2}  # it zeroes what masks left nearly dead: give it the masked state


def _params(state: CompileState) -> int:
    return sum(t.numel() for t in state.gm.parameters())


def _trained(old: CompileState, new: CompileState) -> bool:
    return not torch.equal(new.gm.get_submodule("body.0").weight, old.gm.get_submodule("body.0").weight)


EFFECTS = {  # the passes that rewrite: proof that each did rewrite something here (the test is not vacuous)
    "canonicalize": lambda old, new: new.gm.code != old.gm.code,
    "remove-channels": lambda old, new: _params(new) < _params(old),
    "purify": lambda old, new: new.artifacts["purify"]["num_filters"] + new.artifacts["purify"]["num_columns"] > 0,
    "apply-masks": lambda old, new: any(not torch.equal(new.masks[k], old.masks[k]) for k in old.masks),
    "admm": lambda old, new: _trained(old, new),
    "finetune": lambda old, new: _trained(old, new),
    "fuse": lambda old, new: _params(new) < _params(old),
    "layout": lambda old, new: _relaid(old, new),
}


def _relaid(old: CompileState, new: CompileState) -> bool:
    """Every conv weight converted in the new state, none in the old (strides are not values: checked here)."""
    def weights(state: CompileState) -> list[torch.Tensor]:
        return [p for p in state.gm.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    return all(w.is_contiguous() for w in weights(old)) and all(
        w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights(new))


def _input_state(level: int) -> CompileState:
    """Level 0 bare, 1 traced, 2 analysed (scores, per-weight scores, masks, keep), 3 after one removal;
    each built afresh (a state built on another would share its GraphModule)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = calibrate(Net().eval(), (x,))
    data = [(torch.randn(4, 3, 8, 8), torch.tensor(labels)) for labels in ([0, 1, 2, 3], [4, 0, 1, 2])]
    chain = [Trace(), Canonicalize(), AnalyzeChannels(), ScoreMagnitude(), ScoreWeightMagnitude(),
             ApplyMasks(criterion="magnitude", density=0.6), Allocate(), RemoveChannels()]
    return run_pipeline(CompileState("net", model, (x,), Options(sparsity=0.25), data=data),
                        chain[:[0, 1, 7, 8][level]])


def _freeze(value: Any, depth: int = 0) -> Any:
    """A deep, comparable copy of ``value``: tensors cloned, arrays copied, modules as (code, class per
    module, every parameter/buffer value), dataclasses and containers recursively."""
    if isinstance(value, nn.Module):
        code = value.code if isinstance(value, torch.fx.GraphModule) else None
        tensors = {k: t.detach().clone() for k, t in value.state_dict(keep_vars=True).items()}
        kinds = {k: type(m).__name__ for k, m in value.named_modules()}
        flags = {k: m.training for k, m in value.named_modules()}
        return ("module", code, kinds, flags, tensors)
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if depth > 8:
        return ("deep", id(value))
    if isinstance(value, dict):
        return {k: _freeze(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, depth + 1) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, {f.name: _freeze(getattr(value, f.name), depth + 1)
                                       for f in dataclasses.fields(value)})
    if hasattr(value, "__dict__") and type(value).__module__.startswith("graphprune"):
        return (type(value).__name__, _freeze(vars(value), depth + 1))
    return value


def _differences(before: Any, after: Any, where: str) -> list[str]:
    if isinstance(before, torch.Tensor):
        same = isinstance(after, torch.Tensor) and before.shape == after.shape and torch.equal(before, after)
        return [] if same else [where]
    if isinstance(before, np.ndarray):
        same = isinstance(after, np.ndarray) and before.shape == after.shape and np.array_equal(before, after)
        return [] if same else [where]
    if isinstance(before, dict):
        if not isinstance(after, dict) or set(before) != set(after):
            return [f"{where} (keys)"]
        return [d for k in before for d in _differences(before[k], after[k], f"{where}[{k!r}]")]
    if isinstance(before, tuple):
        if not isinstance(after, tuple) or len(before) != len(after):
            return [where]
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in _differences(b, a, f"{where}[{i}]")]
    return [] if before == after else [where]


def test_every_library_pass_is_covered() -> None:
    assert len(LIBRARY) >= 23 and {"trace", "remove-channels", "admm", "finetune", "emit"} <= set(LIBRARY)


@pytest.mark.parametrize("name", LIBRARY)
def test_pass_leaves_its_input_state_untouched(name: str, tmp_path) -> None:
    p = _configured(tmp_path).get(name) or PASSES[name]()
    state = next((s for s in map(_input_state, range(AT_LEAST.get(name, 0), 4)) if p.requires <= s.facts), None)
    assert state is not None, f"no input state meets {name}'s requirements {sorted(p.requires)}"
    before = {f.name: _freeze(getattr(state, f.name)) for f in dataclasses.fields(state)}
    after = run_pipeline(state, [p])
    changed = [d for f in dataclasses.fields(state)
               for d in _differences(before[f.name], _freeze(getattr(state, f.name)), f.name)]
    assert not changed, f"pass '{name}' changed its input state: {changed[:8]}"
    assert after is not state
    assert EFFECTS.get(name, lambda old, new: True)(state, after), f"pass '{name}' changed nothing here"
