"""The structure the redesign promised, checked on the source so that it stays true: what the code knows
about conv and norm layers lives in a few op-family modules, files and functions stay small, and the
import graph has no cycle (function-local imports included, so a cycle cannot hide inside a function).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("graphprune", "passes", "models_zoo")
MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 60
MAX_FILES_NAMING = 4

CONV = re.compile(r"^(_?Conv(Transpose)?[123]d|_ConvNd|_ConvTransposeNd|LazyConv\w*|conv[123]d|conv_transpose[123]d)$")
NORM = re.compile(r"^(_?BatchNorm[123]?d|_NormBase|_BatchNorm|SyncBatchNorm|LayerNorm\w*|GroupNorm\w*|_InstanceNorm|"
                  r"InstanceNorm[123]d|RMSNorm|LocalResponseNorm|\w*BatchNormAct\w*|FrozenBatchNorm2d|"
                  r"batch_norm|layer_norm|group_norm|instance_norm|rms_norm|local_response_norm)$")


def _sources(dirs: tuple[str, ...] = SOURCE_DIRS) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _names_in_code(tree: ast.AST) -> set[str]:
    """Identifiers and short string constants used in code; comments and docstrings do not count."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.alias):
            out.add(node.name.rpartition(".")[2])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.add(node.value)
    return out


def files_naming(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    out = {}
    for path in _sources(("graphprune", "passes")):
        hits = sorted(n for n in _names_in_code(ast.parse(path.read_text())) if pattern.match(n))
        if hits:
            out[str(path.relative_to(ROOT))] = hits
    return out


def import_graph() -> nx.DiGraph:
    """Module -> the project modules it imports anywhere in its body. ``from pkg import sub`` is an edge
    to ``pkg.sub`` only when ``sub`` is a module (the package itself is then already initialised)."""
    paths = {_module_name(p): p for p in _sources()}
    g = nx.DiGraph()
    for name, path in paths.items():
        g.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        source = path.read_text()
        if "pkgutil.iter_modules(__path__)" in source:  # a package that imports every module it holds
            g.add_edges_from((name, sub) for sub in paths if sub.rpartition(".")[0] == name)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in paths]
                targets = subs if len(subs) == len(node.names) else [base, *subs]
            else:
                continue
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    g.add_edge(name, target)
    return g


@pytest.mark.parametrize(("kind", "pattern"), [("conv", CONV), ("norm", NORM)])
def test_few_files_know_a_layer_family(kind: str, pattern: re.Pattern[str]) -> None:
    naming = files_naming(pattern)
    assert len(naming) <= MAX_FILES_NAMING, f"{len(naming)} files name {kind} types: {naming}"


def test_the_pattern_sees_a_conv_and_a_norm() -> None:
    """The checks above would pass vacuously if the patterns matched nothing."""
    assert "graphprune/ops/conv.py" in files_naming(CONV)
    assert "graphprune/ops/norm.py" in files_naming(NORM)


def test_no_source_file_is_long() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_is_long() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_import_graph_has_no_cycle() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_core_does_not_import_the_zoo() -> None:
    """``graphprune`` is the library; the zoo is an application of it (the command line may use both)."""
    g = import_graph()
    library = [n for n in g if n.startswith("graphprune") and not n.startswith("graphprune.cli")]
    hits = sorted((a, b) for a in library for b in g.successors(a) if b.startswith("models_zoo"))
    assert not hits, f"core modules importing the zoo: {hits}"


def test_the_import_graph_sees_function_local_and_discovered_imports() -> None:
    """The zoo imports its loader inside ``__getattr__`` and the op package discovers its families: a
    cycle can hide neither in a function body nor behind ``importlib``."""
    g = import_graph()
    assert g.has_edge("models_zoo", "models_zoo._loader")
    assert g.has_edge("graphprune.ops", "graphprune.ops.conv") and g.has_edge("graphprune.ops", "graphprune.ops.linear")
