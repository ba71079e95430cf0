"""Loading what ``graphprune compile --out`` wrote, in any format, and a ``.pt`` that loads without graphprune.

``load(path)`` by suffix (see ``docs/loading.md`` for the same without graphprune installed):

- ``.pt2``: ``torch.export.load(path).module()``, an ``nn.Module`` (any batch size when exported so);
- ``.onnx``: an ``OnnxModule``, a callable over an onnxruntime CPU session that takes and returns torch
  tensors (not an ``nn.Module``: ONNX has no parameters to train);
- ``.py``: the written file imported and its ``load()`` called (the weights file beside it), an ``nn.Module``;
- ``.pt``: ``torch.load(path, weights_only=False)``, the pickled ``fx.GraphModule``. A pickle runs code
  when loaded: load only files you trust.

Why ``save_pt``: an ``fx.GraphModule`` pickles the tracer class it was traced with, and ours is
graphprune's, so a plain ``torch.save`` file needs graphprune to load. The tracer only matters when
the pickled code is re-traced on load, and a plain ``torch.fx.Tracer`` re-traces it identically except
for outputs built by a ``dict`` subclass (``OrderedDict``, a ``ModelOutput``: fx would make them plain
dicts). So ``save_pt`` drops the tracer class unless the graph builds such an output or calls graphprune
code, and returns why a file still needs graphprune (empty: it loads with torch alone).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx

from graphprune.errors import InputError

FORMATS = (".pt2", ".onnx", ".py", ".pt")


def load(path: str | Path) -> Any:
    """The model in ``path`` (a file ``graphprune compile --out`` wrote); see the module docstring."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise InputError(f"{path}: unknown format '{path.suffix}' (graphprune writes {', '.join(FORMATS)})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    if path.suffix == ".onnx":
        return OnnxModule(path)
    if path.suffix == ".py":
        return _import_py(path).load()
    return torch.load(path, weights_only=False)


class OnnxModule:
    """Run an ONNX file like a module: ``OnnxModule(path)(x)`` takes torch tensors (positional, in the
    model's input order) and returns a tensor, or a tuple of tensors for several outputs."""

    def __init__(self, path: str | Path, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise InputError(f"{path}: running ONNX needs onnxruntime (pip install 'graphprune[onnx]')") from None
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), providers=list(providers))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise InputError(f"{self.path}: expected {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                             f"got {len(inputs)}")
        feed = {name: x.detach().cpu().numpy() for name, x in zip(self.input_names, inputs)}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __repr__(self) -> str:
        return f"OnnxModule({str(self.path)!r}, inputs={self.input_names}, outputs={self.output_names})"


def _import_py(path: Path) -> Any:
    resolved = path.resolve()
    name = f"_graphprune_loaded_{hashlib.sha1(str(resolved).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "load", None)):
        raise InputError(f"{path}: has no load() function (not a file graphprune wrote?)")
    return module


def needs_graphprune(gm: fx.GraphModule) -> list[str]:
    """Why unpickling ``gm`` needs graphprune importable (empty: torch alone is enough)."""
    from torch.fx.graph_module import _format_import_block
    from torch.package import sys_importer

    reasons = []
    imports = _format_import_block(gm.graph.python_code(root_module="self").globals, sys_importer)
    if "graphprune" in imports:
        reasons.append("the graph calls graphprune functions")
    builders = sorted({n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"
                       and isinstance(n.target, type) and issubclass(n.target, dict) and n.target is not dict})
    if builders:
        reasons.append(f"an output is a {', '.join(builders)} (a dict subclass, kept by graphprune's tracer)")
    return reasons


def save_pt(module: torch.nn.Module, path: str | Path) -> list[str]:
    """``torch.save(module, path)`` (through ``graphprune.io``), for a GraphModule without graphprune's tracer
    class when it is not needed; returns why the file still needs graphprune to load (see the docstring)."""
    from graphprune.io import torch_save

    reasons = needs_graphprune(module) if isinstance(module, fx.GraphModule) else []
    if reasons or not isinstance(module, fx.GraphModule) or "_tracer_cls" not in vars(module):
        torch_save(module, path)
        return reasons
    tracer = vars(module)["_tracer_cls"]
    module._tracer_cls = None  # unpickled with torch.fx.Tracer; restored below: the caller's module is unchanged
    try:
        torch_save(module, path)
    finally:
        module._tracer_cls = tracer
    return reasons
