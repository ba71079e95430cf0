"""``models_zoo._listing``: the input shape listed for a spec (read from metadata, nothing built) is the
shape ``load`` builds its example input with; patterns match words and globs."""

from __future__ import annotations

import pytest

from models_zoo import load
from models_zoo._listing import listing, matches

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLE = ["zoo:resnet20", "torchvision:resnet18", "torchvision:inception_v3", "torchvision:r3d_18",
          "timm:resnet10t", "timm:vit_tiny_patch16_384"]


@pytest.fixture(scope="module")
def listed() -> dict[str, str]:
    found, missing = listing("*")
    assert missing == []
    return {m.spec: m.input_shape for m in found}


@pytest.mark.parametrize("spec", SAMPLE)
def test_listed_shape_is_the_loaded_shape(spec: str, listed: dict[str, str]) -> None:
    _, inputs = load(spec)
    assert listed[spec] == "x".join(map(str, inputs[0].shape))


def test_detection_models_list_one_image_and_the_submodule_hint() -> None:
    found, _ = listing("torchvision:ssd300*")
    assert [(m.spec, m.input_shape) for m in found] == [("torchvision:ssd300_vgg16", "[3x300x300]")]
    assert "--submodule backbone" in found[0].note


def test_every_namespace_is_listed(listed: dict[str, str]) -> None:
    counts = {prefix: sum(s.startswith(prefix) for s in listed) for prefix in ("zoo:", "torchvision:", "timm:")}
    assert counts["zoo:"] == 12 and counts["torchvision:"] > 50 and counts["timm:"] > 500
    assert sum(shape == "?" for shape in listed.values()) == 0


@pytest.mark.parametrize(("pattern", "spec", "expected"), [
    ("resnet1", "torchvision:resnet18", True),  # a word: substring
    ("RESNET18", "timm:resnet18", True),  # case does not matter
    ("resnet18", "zoo:resnet20", False),
    ("timm:vit_*", "timm:vit_tiny_patch16_224", True),
    ("timm:vit_*", "torchvision:vit_b_16", False),
    ("vit_b*", "torchvision:vit_b_16", True),  # a glob also matches the name alone
    ("*tiny", "zoo:vit_tiny", True),
])
def test_patterns(pattern: str, spec: str, expected: bool) -> None:
    assert matches(pattern, spec) is expected
