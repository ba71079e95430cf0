"""``graphprune.apply(..., form="module")``: the pruning as a copy of the user's own ``nn.Module`` class.

Why: the pruned ``fx.GraphModule`` loses the user's class (``generate()``, ``save_pretrained()``,
``model.config``, their own methods). The report's ``kept`` (tensor FQN -> {dim: kept indices}) holds
everything a copy of the model needs: each listed tensor is sliced in the copy, and each module on the
path of a sliced tensor sets its width attributes from the op table (``graphprune.ops.registry``):

- a layer owning a sliced tensor (conv, linear, norm, embedding...) by its ``resize`` declaration, the
  one removal uses on the graph's leaves (here without the graph's input width, so called with None);
- a block the graph traces through (an attention block: ``num_heads``/``head_dim``; a model root holding a
  class token; a Hugging Face model's ``config``) by its ``resize_block`` declaration, which sees how its
  subtree was cut (whole heads or head dims), children first.

A module owning a sliced tensor with neither declaration is refused by name before anything is copied:
its attributes might describe the old widths, and a wrong module is never returned. Sizes baked into
``forward`` code outside any module (``x.view(b, 768, 196)`` in the user's own forward) have no module
to carry them: the check below then fails and says so; the graph result stays the answer there.

The copy is checked on the example inputs against a reference (the pruned graph, or where graphprune
cannot capture the model, the masked dense model: ``graphprune.testing``) and refused with one line if
its output differs. The user's model is not mutated: the copy owns every tensor.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from graphprune.errors import InputError
from graphprune.folded_statistics import Folds, fold, planned_folds
from graphprune.ops.registry import inherited

Kept = Mapping[str, Mapping[int, list[int]]]
MASK_SUFFIX = ".weight_mask"  # graphprune.scoring.masked's buffer
TOLERANCE = 1e-4  # relative to each output's max abs: float rounding of differently ordered kernels


def is_result(value: Any) -> bool:
    """A compile ``Result`` (duck-typed: ``graphprune.api`` builds on this module, not the reverse)."""
    return all(hasattr(value, a) for a in ("module", "report", "state")) and hasattr(value.state, "example_inputs")


def check_representable(model: nn.Module, artifacts: Mapping[str, Any]) -> None:
    """Refuse (one line) what a copy of the user's class cannot compute, before anything is copied: an
    output it zero-fills (``outputs = 'zero-fill'``): the copy's own ``forward`` returns the kept width, and
    only a wrapper around it could scatter it back. Statistics kept over the original width are checked
    with the graph at hand (``graphprune.folded_statistics.planned_folds``)."""
    filled = (artifacts or {}).get("outputs", {}).get("zero_filled") or []
    if filled:
        what = f"output {filled[0]} is" if len(filled) == 1 else f"outputs {', '.join(filled[:2])}" \
            f"{', ...' if len(filled) > 2 else ''} are"
        raise InputError(f"apply: {what} zero-filled "
                         f"(outputs = 'zero-fill'): {type(model).__name__}'s own forward returns the kept width, "
                         f"and only a wrapper around it could fill it back: use form='graphmodule', or compile with "
                         f"outputs='keep' for the module form")


def from_result(result: Any) -> nn.Module:
    """The compiled model's own class with the compiled weights (trained, masked): ``Result.as_module()``."""
    state = result.state
    check_representable(state.model, result.report.artifacts)
    folds = planned_folds(state.model, result.report.artifacts, result.module)
    module = resized_copy(state.model, normal_kept(result.report.kept, state.model), folds, result.module)
    args, kwargs = model_call(state.model, tuple(state.example_inputs), state.input_constants or {})
    with torch.no_grad():
        want = result.module(*state.example_inputs)
    check_output(module, want, args, kwargs, "the pruned graph")
    return module


def from_kept(model: nn.Module, kept: Kept, args: tuple[Any, ...], kwargs: Mapping[str, Any],
              graph: nn.Module | None, graph_inputs: tuple[Any, ...] = (),
              artifacts: Mapping[str, Any] | None = None) -> nn.Module:
    """``model``'s own class pruned to ``kept``, checked against the pruned ``graph``; where there is none
    (graphprune cannot capture the model), against the masked dense model. ``artifacts``: the report's,
    whose full-width statistics the copy's layers fold in."""
    module = resized_copy(model, kept, planned_folds(model, artifacts or {}, graph))
    with torch.no_grad():
        if graph is not None:
            want, against = graph(*graph_inputs), "the pruned graph"
        else:
            from graphprune.testing import masked_model

            want, against = masked_model(model, kept)(*args, **kwargs), "the masked dense model"
    check_output(module, want, args, kwargs, against)
    return module


def normal_kept(kept: Kept, model: nn.Module) -> dict[str, dict[int, list[int]]]:
    """``kept`` without the mask buffers graphprune's masked layers add (``<layer>.weight_mask``, which the
    user's model lacks: mask-level sparsity is not in the report, the masked weights are zero)."""
    own = set(model.state_dict())
    return {k: {int(d): [int(i) for i in index] for d, index in v.items()} for k, v in kept.items()
            if not (k.endswith(MASK_SUFFIX) and k not in own)}


def resized_copy(model: nn.Module, kept: Kept, folds: Folds | None = None, weights: nn.Module | None = None
                 ) -> nn.Module:
    """A deep copy of ``model`` (its own class) with ``kept``'s slices, the values of ``weights`` (a compiled
    graph's trained or masked tensors) where names and shapes agree, full-width statistics folded into
    their layers, and its width attributes updated last (a config reads the folded values too)."""
    owners = _owners(model, kept)
    _check_declared(model, owners)
    module = copy.deepcopy(model)
    _slice(module, kept)
    if weights is not None:
        load_weights(module, weights)
    fold(module, model, folds or {})
    _resize(module, kept, owners)
    return module.eval()


def check_output(module: nn.Module, want: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], against: str) -> None:
    """Refuse (one line) a copy whose output on the example inputs differs from the reference's."""
    name = type(module).__name__
    hint = "a size baked into forward code outside any module has no attribute to carry it: use form='graphmodule'"
    try:
        with torch.no_grad():
            got = module(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of the copy is the same refusal
        first = (str(exc).splitlines() or [""])[0][:200]
        raise InputError(f"apply: the resized {name} fails on the example inputs ({type(exc).__name__}: {first}); "
                         f"{hint}") from None
    where, error = output_difference(got, want)
    if error > TOLERANCE:
        raise InputError(f"apply: the resized {name} differs from {against} at output {where or 'leaf'} (relative "
                         f"error {error:.2e}); {hint}")


def output_difference(got: Any, want: Any) -> tuple[str, float]:
    """The output path and relative error of the worst tensor leaf (inf where the structures or shapes
    differ). Non-tensor leaves that are not plain values (a KV cache object, whose tensors hold the pruned
    widths) are not compared."""
    from graphprune.interface import leaves
    from graphprune.testing import relative_error

    mine, theirs = list(leaves(got)), list(leaves(want))
    if [p for p, _ in mine] != [p for p, _ in theirs]:
        return "structure", float("inf")
    worst = ("", 0.0)
    for (path, g), (_, w) in zip(mine, theirs):
        if isinstance(w, torch.Tensor):
            if not isinstance(g, torch.Tensor) or g.shape != w.shape:
                return path, float("inf")
            error = relative_error(g.float(), w.float()) if w.numel() else 0.0
            worst = max(worst, (path, error), key=lambda pe: pe[1])
        elif isinstance(w, (int, float, str, bool, type(None), type, tuple)) and g != w:
            return path, float("inf")
    return worst


def model_call(model: nn.Module, traced: tuple[Any, ...], constants: Mapping[str, Any]) -> tuple[tuple, dict]:
    """The call of ``model`` that ``graphprune.interface.bind_inputs`` split into graph inputs and constants."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    rest = iter(traced)
    for param in inspect.signature(model.forward).parameters.values():
        if param.kind == param.VAR_POSITIONAL:
            args.extend(rest)
        elif param.kind == param.VAR_KEYWORD:
            continue
        elif param.name in constants:
            kwargs[param.name] = constants[param.name]
        elif param.kind == param.KEYWORD_ONLY:
            kwargs[param.name] = next(rest)
        elif kwargs:  # a positional parameter after a constant passed by name
            kwargs[param.name] = next(rest)
        else:
            args.append(next(rest))
    return tuple(args), kwargs


def load_weights(module: nn.Module, graph: nn.Module) -> None:
    """Copy the graph's values into the resized module wherever a name and shape agree (a compiled result's
    trained or masked weights); the mask buffers graphprune's masked layers add have no slot here."""
    theirs = graph.state_dict()
    with torch.no_grad():
        for name, t in (*module.named_parameters(), *module.named_buffers()):
            other = theirs.get(name)
            if isinstance(other, torch.Tensor) and other.shape == t.shape:
                t.copy_(other)


def _owners(model: nn.Module, kept: Kept) -> dict[str, nn.Module]:
    """Every module path holding (in a parameter or buffer slot) a tensor that ``kept`` slices."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    missing = [fqn for fqn in kept if fqn not in tensors]
    if missing:
        raise InputError(f"apply: the report slices {missing[0]}, which {type(model).__name__} does not have "
                         f"({len(missing)} such): not the same architecture")
    sliced = {id(tensors[fqn]) for fqn in kept}
    return {path: m for path, m in model.named_modules(remove_duplicate=False)
            if any(t is not None and id(t) in sliced for t in (*m._parameters.values(), *m._buffers.values()))}


def _check_declared(model: nn.Module, owners: Mapping[str, nn.Module]) -> None:
    bare = [(path, m) for path, m in owners.items()
            if inherited(m, "resize") is None and inherited(m, "resize_block") is None]
    if bare:
        path, m = bare[0]
        kind = f"{type(m).__module__}.{type(m).__qualname__}"
        raise InputError(f"apply: {path or type(model).__name__} ({kind}) has resized tensors but no declared width "
                         f"attributes (graphprune.ops.registry: resizer or block_resizer for its class): use "
                         f"form='graphmodule', or declare it")


def _slice(module: nn.Module, kept: Kept) -> None:
    """Slice every listed tensor once; every slot holding it (a tied weight's aliases) gets the slice."""
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    new: dict[int, torch.Tensor] = {}
    for fqn, dims in kept.items():
        t = tensors[fqn]
        s = t.detach()
        for dim, index in sorted(dims.items()):
            s = s.index_select(int(dim), torch.as_tensor(index, dtype=torch.long, device=s.device))
        s = s.clone()
        new[id(t)] = nn.Parameter(s, t.requires_grad) if isinstance(t, nn.Parameter) else s
    for m in module.modules():
        for store in (m._parameters, m._buffers):
            for name, t in store.items():
                if t is not None and id(t) in new:
                    store[name] = new[id(t)]


def _resize(module: nn.Module, kept: Kept, owners: Mapping[str, nn.Module]) -> None:
    """Deepest modules first, so a block reads its children's new sizes."""
    paths = set(owners)
    for path in owners:
        parts = path.split(".") if path else []
        paths.update(".".join(parts[:i]) for i in range(len(parts)))
    for path in sorted(paths, key=lambda p: (-(p.count(".") + bool(p)), p)):
        m = module.get_submodule(path)
        block = inherited(m, "resize_block")
        if block is not None:
            _run(block, m, _relative(kept, path), path or type(module).__name__)
        elif path in owners:
            inherited(m, "resize")(m, None)


def _relative(kept: Kept, path: str) -> dict[str, Mapping[int, list[int]]]:
    if not path:
        return dict(kept)
    prefix = path + "."
    return {fqn[len(prefix):]: dims for fqn, dims in kept.items() if fqn.startswith(prefix)}


def _run(block: Callable[..., None], m: nn.Module, kept: Kept, where: str) -> None:
    try:
        block(m, kept)
    except ValueError as exc:
        raise InputError(f"apply: {where} ({type(m).__name__}) cannot carry this pruning: {exc}") from None
