"""Benchmark results as data: one JSON object per line (``docs/results/*.jsonl``).

Why a shared module: the docs tables are generated from these files (``results_tables.py``), so every
benchmark must write records the same way. ``merge`` replaces a record with the same key (a rerun of
the same cell under the same protocol) instead of appending a duplicate, and writes through a
temporary file so an interrupted run never leaves half a line. Records of ``--quick`` smoke runs carry
``"quick": true`` in their protocol and the table script leaves them out unless asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

PAI_FIELDS = ("task", "model", "method", "density", "seed", "test_acc", "collapsed_layers")
STRUCTADMM_FIELDS = ("task", "model", "method", "seed", "compression", "test_acc", "dense_acc")


def load(path: Path) -> list[Record]:
    """Every record of a JSON-lines file (none if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check(record: Record, fields: Iterable[str]) -> Record:
    """The record, if it has every required field; a KeyError naming the missing ones otherwise."""
    missing = [f for f in fields if f not in record]
    if missing:
        raise KeyError(f"result record lacks {', '.join(missing)}: {record}")
    return record


def merge(path: Path, records: Iterable[Record], key: Callable[[Record], Any]) -> None:
    """Write ``records`` into ``path``, replacing existing records with the same ``key``."""
    new = list(records)
    keys = {json.dumps(key(r), sort_keys=True, default=str) for r in new}
    kept = [r for r in load(path) if json.dumps(key(r), sort_keys=True, default=str) not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept + new))
    os.replace(tmp, path)


def pai_key(r: Record) -> tuple:
    """A test cell is one record per protocol whatever learning rate tuning chose; a tuning trial is one
    per learning rate."""
    phase = r.get("phase", "test")
    return (r["task"], r["model"], r["method"], r["kind"], r["level"], r["seed"], phase,
            r.get("lr") if phase == "tune" else None, r["protocol"])


def structadmm_key(r: Record) -> tuple:
    return r["task"], r["model"], r["method"], r["target_compression"], r["seed"], r["protocol"]


def write_between(doc: Path, marker: str, text: str) -> bool:
    """Replace what lies between ``<!-- marker: start -->`` and ``<!-- marker: end -->`` in ``doc`` with
    ``text`` (the generated table of a docs page); False, and nothing written, when the page or its
    markers are missing."""
    start, end = f"<!-- {marker}: start -->", f"<!-- {marker}: end -->"
    if not doc.exists() or start not in doc.read_text():
        return False
    before, rest = doc.read_text().split(start, 1)
    doc.write_text(f"{before}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")
    return True
