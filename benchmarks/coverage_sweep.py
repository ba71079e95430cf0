"""Coverage sweep: does ``graphprune.compile`` handle every torchvision classifier / timm family?

What is measured
----------------
For each model (randomly initialised, ``weights=None`` / ``pretrained=False``, never downloaded),
in a fresh Python process with a wall-clock timeout (``--timeout``, default 300 s) so that one hang
or crash does not take the sweep down:

1. ``models_zoo.load(spec, input_size=...)`` and one dense forward pass (the reference shape),
2. ``graphprune.compile(model, inputs, sparsity=0.5)`` (timed: ``seconds``),
3. one forward pass of ``r.module``; ``shape_ok`` = its output shape equals the dense one,
4. ``r.report.macs_reduction``, ``unknown_ops`` (distinct op names), ``frozen`` reasons and the
   number of ``inexact`` entries.

A failure anywhere is recorded with the stage it happened in (load, dense, compile, forward), the
exception type and the first line of its message (``error``), and for non-graphprune exceptions
the innermost source location (``where``).  A timeout records the last stage the child reached.

Model lists
-----------
``--source torchvision``: all of ``torchvision.models.list_models(module=torchvision.models)``,
at torchvision's default size (224; inception_v3 299, as ``models_zoo`` sets it).

``--source timm``: one representative per ``timm.list_modules()`` family, picked from
``timm.list_models(module=family)`` by a cheap name heuristic that prefers small variants (see
:func:`pick_representative`; names starting with ``test_`` are skipped).  Input: the model's
default pretrained-cfg size, capped to 224 (if building/running at 224 fails, the default size is
used and recorded).

``--models a,b,c`` restricts either list (names, or for timm also family names).
``--input-size N`` forces one size for every model (as far as the model allows).

Output
------
One JSON line per model appended to ``--out`` (default ``runs/coverage_<source>.jsonl``) as soon as
it finishes; ``--resume`` skips models already in that file, so an interrupted sweep can go on.
At the end a table (model | ok | out shape ok | MACs x | s | unknown ops | error) and a summary are
printed; ``--markdown`` prints them as Markdown.  ``--report FILE.jsonl`` only prints the table of
an existing results file.

Which code is measured: ``--snapshot worktree`` (default) copies ``graphprune/``, ``passes/`` and
``models_zoo/`` from the working tree at the start and every child imports that copy, so edits made
while the sweep runs do not mix versions; ``--snapshot head`` measures the committed HEAD instead
(``git archive``); ``--snapshot none`` imports the live repository.  The commit is logged.

Run it (from the repository root; CPU-bound: about 9 minutes for torchvision and 7 for timm on
2 cores; results in docs/coverage.md)::

    python benchmarks/coverage_sweep.py --source torchvision --jobs 2 --snapshot head
    python benchmarks/coverage_sweep.py --source timm --jobs 2 --resume
    python benchmarks/coverage_sweep.py --report runs/coverage_timm.jsonl --markdown
    python benchmarks/coverage_sweep.py --one torchvision resnet18     # one child, JSON to stdout
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when imported by tests/test_coverage.py
from _measure import _first_tensor  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("graphprune", "passes", "models_zoo")  # what a snapshot copies
RESULT_MARKER = "@@COVERAGE-RESULT@@ "
STAGE_MARKER = "@@COVERAGE-STAGE@@ "
SPARSITY = 0.5
DEFAULT_TIMEOUT = 300.0
TIMM_MAX_SIZE = 224
# "good pruning" thresholds on r.report.macs_reduction at sparsity 0.5
MACS_THRESHOLD = {"torchvision": 2.5, "timm": 1.5}


# --------------------------------------------------------------------------------------------------
# model lists


def torchvision_models() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


# Name fragments of small variants, smallest-first.  Alphabetic ones match anywhere in the name,
# the others only as a whole '_'-separated segment or at the end of the name.
_SMALL_WORDS = ("atto", "femto", "pico", "nano", "xxtiny", "xxs", "xx_small", "xtiny", "tiny", "xs",
                "x_small", "small", "mini")
_SMALL_SEGMENTS = ("s", "t", "b0", "s0", "m0", "t0", "m1", "18", "050", "035", "002", "ti")
_BIG_RES = re.compile(r"(?:^|_)(?:2[4-9]\d|[3-9]\d\d|1\d\d\d)(?:_|$)")  # _384, _448, _256 ...


def _smallness(name: str) -> int:
    """Lower is (probably) smaller: index of the first small-variant marker found in ``name``."""
    segments = name.split("_")
    markers = _SMALL_WORDS + _SMALL_SEGMENTS
    for rank, marker in enumerate(markers):
        if marker in _SMALL_WORDS:
            if marker in name:
                return rank
        elif marker in segments or (len(marker) > 1 and name.endswith(marker)):
            return rank
    return len(markers)


def pick_representative(names: list[str]) -> str | None:
    """The family's representative: the name with the best :func:`_smallness` rank, then without a
    >224 resolution in its name, then the first in timm's order.  ``test_*`` models are skipped."""
    candidates = [n for n in names if not n.startswith("test_")] or list(names)
    if not candidates:
        return None
    order = {n: i for i, n in enumerate(candidates)}
    return min(candidates, key=lambda n: (_smallness(n), bool(_BIG_RES.search(n)), order[n]))


def timm_families() -> list[tuple[str, str]]:
    """``[(family, representative model name)]`` over ``timm.list_modules()`` (families with no
    model are skipped)."""
    import timm

    out = []
    for family in timm.list_modules():
        rep = pick_representative(list(timm.list_models(module=family)))
        if rep is not None:
            out.append((family, rep))
    return out


# --------------------------------------------------------------------------------------------------
# which code is measured


def _code_root() -> Path:
    """Where the measured ``graphprune``/``passes``/``models_zoo`` are imported from: the
    repository, or the snapshot the parent made (``GRAPHPRUNE_COVERAGE_CODE``)."""
    return Path(os.environ.get("GRAPHPRUNE_COVERAGE_CODE") or REPO)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=str(REPO), check=False, capture_output=True,
                              text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def snapshot_code(mode: str, dest: Path) -> dict[str, Any]:
    """Freeze the code under test for the whole sweep, so that edits made while it runs do not mix
    versions.  ``head``: the committed tree (``git archive HEAD``); ``worktree``: a copy of the
    working tree's packages; ``none``: import from the repository as it is at each child's start.
    Returns a description: commit, and whether the measured packages had uncommitted changes."""
    import io
    import shutil
    import tarfile

    info: dict[str, Any] = {"snapshot": mode, "commit": _git("rev-parse", "--short", "HEAD")}
    dirty = _git("status", "--porcelain", "--", *CODE_PACKAGES)
    info["uncommitted_changes"] = bool(dirty) and mode != "head"
    if mode == "none":
        return info
    dest.mkdir(parents=True, exist_ok=True)
    if mode == "head":
        data = subprocess.run(["git", "archive", "--format=tar", "HEAD", *CODE_PACKAGES], cwd=str(REPO),
                              check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python < 3.10.12 / 3.11.4
                tar.extractall(dest)  # our own repository's HEAD
    else:
        for pkg in CODE_PACKAGES:
            shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    info["code"] = str(dest)
    return info


# --------------------------------------------------------------------------------------------------
# child side: one model


def _stage(name: str) -> None:
    sys.stderr.write(f"{STAGE_MARKER}{name}\n")
    sys.stderr.flush()


def _shape(out: Any) -> list[int] | None:
    t = _first_tensor(out)
    return list(t.shape) if t is not None else None


def _error_fields(exc: BaseException) -> dict[str, Any]:
    from graphprune.errors import GraphpruneError

    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    first = lines[0].strip() if lines else ""
    fields: dict[str, Any] = {
        "error_type": type(exc).__name__,
        "graphprune_error": isinstance(exc, GraphpruneError),
        "error": f"{type(exc).__name__}: {first}"[:400],
    }
    if not isinstance(exc, GraphpruneError):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            f = frames[-1]
            path = f.filename
            for root in (str(_code_root()) + os.sep, str(REPO) + os.sep, "site-packages" + os.sep):
                if root in path:
                    path = path.split(root, 1)[1]
            fields["where"] = f"{path}:{f.lineno} in {f.name}"
    return fields


def _load(spec: str, input_size: int | None):
    import models_zoo

    return models_zoo.load(spec, input_size=input_size)


def _default_size(source: str, name: str) -> int | None:
    """The input size ``models_zoo.load`` uses when given none (None: unknown)."""
    if source == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        size = getattr(cfg, "input_size", None) if cfg is not None else None
        return int(size[-1]) if size else None
    if source == "torchvision":
        from models_zoo._loader import DEFAULT_IMAGE_SHAPE, TORCHVISION_INPUT_SIZE

        return TORCHVISION_INPUT_SIZE.get(name, DEFAULT_IMAGE_SHAPE[-1])
    return None


def input_sizes(source: str, name: str, input_size: int | None, max_input_size: int | None) -> list[int | None]:
    """Sizes to try, in order (None = the model's default).  ``input_size`` is strict; with
    ``max_input_size`` the capped size is tried first and the default is the fallback."""
    if input_size is not None:
        return [input_size]
    if max_input_size is not None:
        default = _default_size(source, name)
        if default is None or default > max_input_size:
            return [max_input_size, None]
    return [None]


def measure_one(source: str, name: str, input_size: int | None,
                max_input_size: int | None = None) -> dict[str, Any]:
    import torch

    root = str(_code_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    res: dict[str, Any] = {"source": source, "model": name, "status": "error", "stage": "load",
                           "threads": torch.get_num_threads()}
    spec = f"{source}:{name}"
    try:
        _stage("load")
        sizes = input_sizes(source, name, input_size, max_input_size)
        for i, size in enumerate(sizes):
            try:
                model, inputs = _load(spec, size)
                res["stage"] = "dense"
                _stage("dense")
                with torch.no_grad():
                    dense_out = model(*inputs)
                break
            except Exception:
                if i == len(sizes) - 1:
                    raise
                res["stage"] = "load"
        res["input_shape"] = list(inputs[0].shape)
        res["dense_shape"] = _shape(dense_out)
        res["params"] = sum(p.numel() for p in model.parameters())
        del dense_out

        import graphprune

        res["code"] = str(Path(graphprune.__file__).resolve().parent.parent)
        res["stage"] = "compile"
        _stage("compile")
        t0 = time.perf_counter()
        r = graphprune.compile(model, inputs, sparsity=SPARSITY)
        res["seconds"] = round(time.perf_counter() - t0, 2)
        rep = r.report
        res["macs_before"] = rep.macs_before
        res["macs_after"] = rep.macs_after
        res["macs_reduction"] = round(rep.macs_reduction, 4)
        res["params_reduction"] = round(rep.params_reduction, 4)
        res["unknown_ops"] = sorted({u["op"] for u in rep.unknown_ops})
        res["unknown_op_nodes"] = len(rep.unknown_ops)
        res["frozen"] = {f["reason"]: len(f["nodes"]) for f in rep.frozen}
        res["inexact"] = {f["reason"]: len(f["nodes"]) for f in rep.inexact}
        res["groups"], res["prunable_groups"] = rep.groups, rep.prunable_groups

        res["stage"] = "forward"
        _stage("forward")
        with torch.no_grad():
            out = r.module(*inputs)
        res["out_shape"] = _shape(out)
        res["shape_ok"] = res["out_shape"] == res["dense_shape"] and res["out_shape"] is not None
        res["status"] = "ok"
        res["stage"] = "done"
    except Exception as exc:  # noqa: BLE001 - every failure is a result
        res.update(_error_fields(exc))
    return res


def child_main(source: str, name: str, input_size: int | None, max_input_size: int | None,
               threads: int | None) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    if threads:
        torch.set_num_threads(threads)
    res = measure_one(source, name, input_size, max_input_size)
    sys.stdout.write(RESULT_MARKER + json.dumps(res, default=str) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------------
# parent side


def _text(data: Any) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _last_stage(stderr: str) -> str | None:
    stage = None
    for line in stderr.splitlines():
        if line.startswith(STAGE_MARKER):
            stage = line[len(STAGE_MARKER):].strip()
    return stage


def run_child(source: str, name: str, input_size: int | None, timeout: float, threads: int,
              max_input_size: int | None = None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", source, name, "--threads", str(threads)]
    if input_size:
        cmd += ["--input-size", str(input_size)]
    if max_input_size:
        cmd += ["--max-input-size", str(max_input_size)]
    root = str(_code_root())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    base = {"source": source, "model": name, "status": "error"}
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    except subprocess.TimeoutExpired as exc:
        stage = _last_stage(_text(exc.stderr))
        return {**base, "stage": stage or "?", "error_type": "Timeout",
                "error": f"timeout after {timeout:.0f}s (in stage {stage or '?'})",
                "wall_seconds": round(time.perf_counter() - t0, 1)}
    wall = round(time.perf_counter() - t0, 1)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return {**json.loads(line[len(RESULT_MARKER):]), "wall_seconds": wall}
    tail = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith(STAGE_MARKER)]
    stage = _last_stage(proc.stderr)
    return {**base, "stage": stage or "?", "error_type": "Crash",
            "error": f"child exited with code {proc.returncode} (in stage {stage or '?'}): "
                     f"{tail[-1] if tail else ''}"[:400],
            "wall_seconds": wall}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def build_worklist(source: str, models: list[str] | None) -> list[tuple[str | None, str]]:
    """``[(family or None, model name)]`` for the sweep."""
    if source == "torchvision":
        work: list[tuple[str | None, str]] = [(None, n) for n in torchvision_models()]
        if models:
            unknown = set(models) - {n for _, n in work}
            if unknown:
                raise SystemExit(f"not torchvision classification models: {sorted(unknown)}")
            work = [(f, n) for f, n in work if n in models]
        return work
    work = list(timm_families())
    if models:
        wanted = set(models)
        picked = [(f, n) for f, n in work if f in wanted or n in wanted]
        extra = wanted - {f for f, _ in picked} - {n for _, n in picked}
        work = picked + [(None, n) for n in sorted(extra)]  # explicit timm model names
    return work


def sweep(source: str, work: list[tuple[str | None, str]], out_path: Path, jobs: int, timeout: float,
          input_size: int | None, resume: bool, max_input_size: int | None = None,
          quiet: bool = False) -> list[dict[str, Any]]:
    done = {r["model"]: r for r in _read_jsonl(out_path)} if resume else {}
    if not resume and out_path.exists():
        out_path.unlink()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    todo = [(f, n) for f, n in work if n not in done]
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    lock = threading.Lock()
    results = dict(done)
    log = (lambda *a, **k: None) if quiet else print
    log(f"[coverage] {source}: {len(work)} models, {len(todo)} to run, jobs={jobs}, "
          f"threads/child={threads}, timeout={timeout:.0f}s -> {out_path}", file=sys.stderr, flush=True)
    t_start = time.perf_counter()

    def one(item: tuple[str | None, str]) -> dict[str, Any]:
        family, name = item
        res = run_child(source, name, input_size, timeout, threads, max_input_size)
        if family is not None:
            res["family"] = family
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(one, item): item for item in todo}
        for i, fut in enumerate(as_completed(futures), 1):
            res = fut.result()
            with lock:
                results[res["model"]] = res
                with out_path.open("a") as fh:
                    fh.write(json.dumps(res, default=str) + "\n")
            flag = "ok" if res.get("status") == "ok" else "ERR"
            log(f"[coverage] {i}/{len(todo)} {res['model']}: {flag} "
                  f"macs x{res.get('macs_reduction', '-')} {res.get('wall_seconds')}s "
                  f"{'' if flag == 'ok' else res.get('error', '')[:120]} "
                  f"(elapsed {time.perf_counter() - t_start:.0f}s)", file=sys.stderr, flush=True)
    order = [n for _, n in work]
    return [results[n] for n in order if n in results]


# --------------------------------------------------------------------------------------------------
# table and summary


def _fmt_row(r: dict[str, Any], source: str) -> list[str]:
    ok = r.get("status") == "ok"
    name = r["model"] if not r.get("family") else f"{r['family']}: {r['model']}"
    shape = "-" if not ok else ("yes" if r.get("shape_ok") else f"no {r.get('out_shape')}")
    macs = f"{r['macs_reduction']:.2f}" if ok and r.get("macs_reduction") is not None else "-"
    secs = f"{r['seconds']:.1f}" if r.get("seconds") is not None else (
        f">{r['wall_seconds']:.0f}" if r.get("error_type") == "Timeout" else "-")
    unknown = ", ".join(r.get("unknown_ops") or []) or ""
    err = r.get("error", "") if not ok else ""
    if err and r.get("stage") and r.get("error_type") not in ("Timeout", "Crash"):
        err = f"[{r['stage']}] {err}"
    return [name, "yes" if ok else "no", shape, macs, secs, unknown, err]


HEADER = ["model", "ok", "out shape ok", "MACs x", "s", "unknown ops", "error"]


def summary(rows: list[dict[str, Any]], source: str) -> dict[str, Any]:
    thr = MACS_THRESHOLD.get(source, 1.5)
    ok = [r for r in rows if r.get("status") == "ok" and r.get("shape_ok")]
    good = [r for r in ok if (r.get("macs_reduction") or 0) >= thr]
    n = len(rows)
    return {"total": n, "ok_same_shape": len(ok), "macs_threshold": thr, "macs_ge_threshold": len(good),
            "ok_fraction": len(ok) / n if n else 0.0, "macs_fraction": len(good) / n if n else 0.0}


def render(rows: list[dict[str, Any]], source: str, markdown: bool) -> str:
    table = [_fmt_row(r, source) for r in rows]
    s = summary(rows, source)
    lines = []
    if markdown:
        esc = [[c.replace("|", "\\|") for c in row] for row in table]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "|".join(["---"] * len(HEADER)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in esc]
    else:
        trunc = [row[:-1] + [row[-1][:100]] for row in table]
        widths = [max(len(h), *(len(row[i]) for row in trunc)) if trunc else len(h)
                  for i, h in enumerate(HEADER)]
        fmt = " | ".join(f"{{:<{w}}}" for w in widths)
        lines.append(fmt.format(*HEADER))
        lines.append("-+-".join("-" * w for w in widths))
        lines += [fmt.format(*row) for row in trunc]
    lines.append("")
    lines.append(f"{source}: {s['ok_same_shape']}/{s['total']} compiled ok with the same output shape "
                 f"({s['ok_fraction']:.1%}); {s['macs_ge_threshold']}/{s['total']} with MACs reduction "
                 f">= {s['macs_threshold']}x ({s['macs_fraction']:.1%})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=("torchvision", "timm"), default="torchvision")
    p.add_argument("--models", help="comma-separated model (or timm family) names to restrict to")
    p.add_argument("--jobs", type=int, default=2, help="parallel child processes (default 2)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per model (default 300)")
    p.add_argument("--input-size", type=int, default=None, help="force this input size for every model")
    p.add_argument("--max-input-size", type=int, default=None,
                   help="try min(default, N) first, the model's default if that fails "
                        f"(default: {TIMM_MAX_SIZE} for timm, none for torchvision)")
    p.add_argument("--out", type=Path, default=None, help="JSON-lines results (default runs/coverage_SOURCE.jsonl)")
    p.add_argument("--resume", action="store_true", help="skip models already in --out")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--report", type=Path, default=None, help="only print the table of this results file")
    p.add_argument("--snapshot", choices=("worktree", "head", "none"), default="worktree",
                   help="freeze the measured code at the start: a copy of the working tree (default), "
                        "the committed HEAD, or none (import from the repository as it changes)")
    p.add_argument("--list", action="store_true", help="print the models the sweep would run and exit")
    p.add_argument("--one", nargs=2, metavar=("SOURCE", "NAME"), help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.one:
        child_main(args.one[0], args.one[1], args.input_size, args.max_input_size, args.threads)
        return 0

    if args.report:
        rows = sorted(_read_jsonl(args.report), key=lambda r: (r.get("family") or r["model"]).lower())
        source = rows[0].get("source", args.source) if rows else args.source
        print(render(rows, source, args.markdown))
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    work = build_worklist(args.source, models)
    if args.list:
        for family, name in work:
            print(f"{family}: {name}" if family else name)
        return 0
    out = args.out or REPO / "runs" / f"coverage_{args.source}.jsonl"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="coverage_code_") as tmp:
        info = snapshot_code(args.snapshot, Path(tmp))
        if "code" in info:
            os.environ["GRAPHPRUNE_COVERAGE_CODE"] = info["code"]  # children inherit it
        print(f"[coverage] code: commit {info['commit']}, snapshot={info['snapshot']}, "
              f"uncommitted changes in {'/'.join(CODE_PACKAGES)}: {info['uncommitted_changes']}",
              file=sys.stderr, flush=True)
        _run(args, work, out)
    return 0


def _run(args: argparse.Namespace, work: list[tuple[str | None, str]], out: Path) -> None:
    t0 = time.perf_counter()
    max_size = args.max_input_size or (TIMM_MAX_SIZE if args.source == "timm" else None)
    rows = sweep(args.source, work, out, args.jobs, args.timeout, args.input_size, args.resume, max_size)
    print(f"[coverage] done in {time.perf_counter() - t0:.0f}s on {platform.node()} "
          f"({os.cpu_count()} CPUs)", file=sys.stderr)
    print(render(rows, args.source, args.markdown))


if __name__ == "__main__":
    sys.exit(main())
