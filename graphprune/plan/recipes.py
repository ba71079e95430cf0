"""Ready plans shipped with graphprune, named on the CLI (``--plan macs-50-global``) and meant to be
copied: each is a TOML file in ``graphprune/plan/recipes/`` whose first comment says what it does."""

from __future__ import annotations

from pathlib import Path

RECIPE_DIR = Path(__file__).parent / "recipes"
RECIPES = {p.stem: p for p in sorted(RECIPE_DIR.glob("*.toml"))}


def recipe_path(name: str) -> Path:
    return RECIPES[name]


def recipe_summary(name: str) -> str:
    first = RECIPES[name].read_text().splitlines()[0]
    return first.lstrip("# ").strip()
