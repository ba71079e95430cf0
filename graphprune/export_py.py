"""Write an fx.GraphModule as plain Python: a ``.py`` file with the module class (its ``__init__``
rebuilds every layer from its constructor, ``forward`` is the generated fx code) and a ``load()``
function, plus a weights file next to it. Loading needs torch (and whatever library the graph's own
functions come from, e.g. torchvision), never graphprune.

A layer whose constructor call cannot be reproduced from its ``repr`` (custom classes, attributes
changed after construction) is pickled into the weights file instead, which the loader then reads
with ``weights_only=False``; the record says so. A graph that calls into graphprune itself cannot be
written standalone and is refused by name, except for the plain-torch kernels graphprune marks
standalone (``graphprune.ops.full_width``): their source is copied into the file.
"""

from __future__ import annotations

import inspect
import keyword
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.graph_module import _format_import_block
from torch.package import sys_importer

from graphprune.errors import StandaloneError
from graphprune.ops.full_width import STANDALONE

_PLAIN = (int, float, str, bool, type(None), tuple, list)

_TEMPLATE = '''"""{name}: a torch.fx GraphModule written out by graphprune as plain PyTorch.

``load()`` rebuilds it with the weights in {weights!r} next to this file; it needs torch, not graphprune."""
# ruff: noqa
{imports}
import torch
from pathlib import Path

WEIGHTS = Path(__file__).with_name({weights!r})


def _install(root, path, value, parameter=False, persistent=True):
    """Set ``value`` at a dotted path, creating plain container modules on the way."""
    *parents, leaf = path.split(".")
    for name in parents:
        if name not in root._modules:
            root.add_module(name, torch.nn.Module())
        root = root._modules[name]
    if isinstance(value, torch.nn.Module):
        root.add_module(leaf, value)
    elif parameter:
        root.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=value.is_floating_point()))
    else:
        root.register_buffer(leaf, value, persistent=persistent)


class {cls}(torch.nn.Module):
    def __init__(self):
        super().__init__()
{init}

{forward}

def load(weights=WEIGHTS, map_location="cpu"):
    blob = torch.load(weights, map_location=map_location, weights_only={weights_only})
    model = {cls}()
    for path, module in blob["modules"].items():
        _install(model, path, module)
    for path, tensor in blob["extra_buffers"].items():  # non-persistent: not in the state dict
        _install(model, path, tensor, persistent=False)
    model.load_state_dict(blob["state_dict"], strict=True)
    return model.eval()
'''


def _same_config(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is not type(b) or repr(a) != repr(b):
        return False
    public = [k for k in {*vars(a), *vars(b)} if not k.startswith("_") and k != "training"]
    if any(not isinstance(vars(a).get(k), _PLAIN) or vars(a).get(k) != vars(b).get(k) for k in public):
        return False
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in a.state_dict().items()}
    return shapes == {k: (tuple(v.shape), v.dtype) for k, v in b.state_dict().items()}


def constructor(module: nn.Module) -> str | None:
    """``torch.nn.X(...)`` rebuilding ``module``'s configuration (torch.nn classes only), or None if its
    repr does not."""
    cls = type(module)
    if not cls.__module__.startswith("torch.nn.") or module._modules:
        return None
    owner = "torch.nn" if getattr(nn, cls.__name__, None) is cls else cls.__module__
    source = f"{owner}.{module!r}"
    try:
        with torch.device("meta"):
            rebuilt = eval(source, {"torch": torch, "inf": float("inf"), "nan": float("nan")})  # noqa: S307
    except Exception:
        return None
    return source if _same_config(module, rebuilt) else None


def _class_name(gm: fx.GraphModule) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in type(gm).__name__) or "Model"
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"Model_{name}"


def python_source(gm: fx.GraphModule, weights_name: str) -> tuple[str, dict[str, Any]]:
    """(source of the .py file, the blob to ``torch.save`` as its weights file)."""
    code = gm.graph.python_code(root_module="self")
    kernels = {name: fn for name, fn in code.globals.items() if getattr(fn, STANDALONE, False)}
    imports = _format_import_block({k: v for k, v in code.globals.items() if k not in kernels}, sys_importer)
    if "graphprune" in imports:
        raise StandaloneError(f"the graph calls graphprune functions ({imports.count('graphprune')} imports): "
                              "it cannot be written as standalone Python; use .pt2 or .onnx")
    imports += "".join(f"\n\n{_kernel_source(fn)}{name} = {fn.__name__}\n" for name, fn in kernels.items())
    leaves = [str(n.target) for n in gm.graph.nodes if n.op == "call_module"]
    init, pickled = [], {}
    for target in dict.fromkeys(leaves):
        module = gm.get_submodule(target)
        source = constructor(module)
        if source is None:
            pickled[target] = module
        else:
            init.append(f"        _install(self, {target!r}, {source})")
    under_leaf = tuple(f"{t}." for t in leaves)
    persistent = gm.state_dict()
    extra = {}
    for kind, named in (("param", gm.named_parameters()), ("buffer", gm.named_buffers())):
        for path, tensor in named:
            if path.startswith(under_leaf):
                continue
            if kind == "buffer" and path not in persistent:
                extra[path] = tensor
                continue
            init.append(f"        _install(self, {path!r}, torch.empty({list(tensor.shape)}, dtype={tensor.dtype}), "
                        f"parameter={kind == 'param'})")
    lines = code.src.strip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def forward"))
    imports += "\n" + "\n".join(lines[:start])  # torch.fx.wrap(...) calls must stay at module level
    forward = "\n".join("    " + line if line else line for line in lines[start:])
    source = _TEMPLATE.format(name=type(gm).__name__, weights=weights_name, imports=imports, cls=_class_name(gm),
                              init="\n".join(init) or "        pass", forward=forward,
                              weights_only=not pickled)
    blob = {"state_dict": persistent, "modules": pickled, "extra_buffers": extra}
    return source, blob


def _kernel_source(fn: Any) -> str:
    """A standalone kernel's definition without its decorator (which marks it, in graphprune only)."""
    return "".join(line for line in inspect.getsourcelines(fn)[0] if not line.lstrip().startswith("@"))


def weights_path(py_path: Path) -> Path:
    return Path(py_path).with_name(f"{Path(py_path).stem}_weights.pt")
