"""The tests mirror the tree: every pass module ``passes/<name>.py`` has ``tests/passes/test_<name>.py``
and every op family ``graphprune/ops/<family>.py`` has ``tests/ops/test_<family>.py``, so a new pass or
family without a test file of its own fails here. The test folders hold no ``__init__.py`` (pytest then
imports a test module by its file name, so those names must be unique), and none of them may become a
package named like a library one: ``tests/passes/__init__.py`` would make ``import passes`` find the
test folder instead of the pass library."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIRRORS = {  # source folder -> its test folder, and the modules in it that are neither a pass nor a family
    "passes": ("tests/passes", {"__init__"}),
    "graphprune/ops": ("tests/ops", {"__init__", "registry"}),
}


def untested(root: Path) -> list[str]:
    """Each source module under ``root`` whose mirrored test file is missing, with the file it needs."""
    missing = []
    for source, (tests, exempt) in MIRRORS.items():
        for module in sorted((root / source).glob("*.py")):
            wanted = f"{tests}/test_{module.stem}.py"
            if module.stem not in exempt and not (root / wanted).is_file():
                missing.append(f"{source}/{module.name} has no {wanted}")
    return missing


def test_every_pass_and_op_family_has_a_test_file_of_its_name() -> None:
    missing = untested(ROOT)
    assert not missing, "; ".join(missing)


def test_the_check_names_a_missing_test_file(tmp_path: Path) -> None:
    """The check above would pass vacuously if it looked in the wrong place."""
    for path in ("passes/__init__.py", "passes/fuse.py", "passes/new_pass.py", "tests/passes/test_fuse.py",
                 "graphprune/ops/__init__.py", "graphprune/ops/registry.py", "graphprune/ops/conv.py",
                 "graphprune/ops/norm.py", "tests/ops/test_norm.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    assert untested(tmp_path) == ["passes/new_pass.py has no tests/passes/test_new_pass.py",
                                  "graphprune/ops/conv.py has no tests/ops/test_conv.py"]
    assert len(list((ROOT / "passes").glob("*.py"))) > 20  # and the real tree is where it looks


def test_test_file_names_are_unique() -> None:
    counts = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert not [name for name, n in counts.items() if n > 1], counts


def test_no_test_folder_is_a_package_named_like_a_library_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {"graphprune", "passes", "models_zoo"} <= packages
    shadowing = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("__init__.py")
                 if p.parent.name in packages]
    assert not shadowing, shadowing
