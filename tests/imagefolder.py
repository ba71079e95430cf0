"""Test data on disk: scikit-learn's bundled digits written as an ImageFolder of PNGs (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_digits(root: Path, per_class: int | None = None, layout: str = "flat") -> Path:
    """``root/<digit>/<i>.png`` (layout "flat") or ``root/train|val/<digit>/<i>.png`` (layout "split": every
    fifth image of a class in val/), 8x8 greyscale PNGs of the first ``per_class`` digits of each class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    counts: dict[int, int] = {}
    for image, label in zip(bunch.images, bunch.target):
        index = counts.get(int(label), 0)
        if per_class is not None and index >= per_class:
            continue
        counts[int(label)] = index + 1
        part = ("val" if index % 5 == 4 else "train") if layout == "split" else ""
        folder = root / part / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{index}.png")
    return root
