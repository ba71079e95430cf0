"""Reading a plan's text and finding where each key sits, so errors can name the file line.

TOML has no position-aware parser in the standard library, so ``toml_lines`` scans the text for table
headers and ``key =`` lines (enough for the plans people write by hand); YAML and JSON (a subset of
YAML) get exact positions from PyYAML's composer. Paths look like ``prune[1].budget.macs``."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphprune.errors import PlanError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]+"|'[^']+'|[A-Za-z0-9_.-]+)\s*=""")
_INLINE_KEY = re.compile(r"""[{,]\s*("[^"]+"|[A-Za-z0-9_-]+)\s*=""")


@dataclass
class PlanSource:
    """A plan's data plus where it came from: ``name`` (file path or "plan") and key path -> line."""

    data: dict[str, Any]
    name: str = "plan"
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, path: str) -> str:
        """``file:line: path`` for the deepest located prefix of ``path``."""
        probe = path
        while probe:
            if probe in self.lines:
                return f"{self.name}:{self.lines[probe]}: {path}"
            shorter = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
            probe = "" if shorter == probe else shorter
        return f"{self.name}: {path}" if path else self.name


def _unquote(key: str) -> str:
    return key[1:-1] if key[:1] in "\"'" else key


def toml_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    prefix = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            name = ".".join(_unquote(p.strip()) for p in header.group(2).split("."))
            if header.group(1) == "[[":
                index = counts.get(name, 0)
                counts[name] = index + 1
                prefix = f"{name}[{index}]"
            else:
                prefix = name
            lines.setdefault(prefix, number)
            continue
        key = _KEY.match(line)
        if not key:
            continue
        path = ".".join(p for p in (prefix, *(_unquote(k) for k in key.group(1).split("."))) if p)
        lines.setdefault(path, number)
        for inner in _INLINE_KEY.finditer(line[key.end():]):
            lines.setdefault(f"{path}.{_unquote(inner.group(1))}", number)
    return lines


def yaml_lines(text: str) -> dict[str, int]:
    import yaml

    lines: dict[str, int] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                lines.setdefault(sub, key.start_mark.line + 1)
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = f"{path}[{i}]"
                lines.setdefault(sub, item.start_mark.line + 1)
                walk(item, sub)

    try:
        walk(yaml.compose(text), "")
    except yaml.YAMLError:
        return {}
    return lines


def read_plan_file(path: Path) -> PlanSource:
    if not path.is_file():
        raise PlanError(f"plan file {path} does not exist")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return PlanSource(tomllib.loads(text), str(path), toml_lines(text))
        if suffix == ".json":
            return PlanSource(json.loads(text), str(path), yaml_lines(text))
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            return PlanSource(data if data is not None else {}, str(path), yaml_lines(text))
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except Exception as exc:  # yaml.YAMLError; PyYAML is imported lazily
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise PlanError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    raise PlanError(f"plan file {path}: unsupported suffix '{path.suffix}' (use .toml, .yaml, .yml or .json)")
