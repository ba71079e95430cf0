"""Tests for models_zoo: every in-repo model loads, traces and matches eager; every spec form
resolves; bad specs fail with an actionable UnknownModelError."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import fx, nn

import models_zoo
from graphprune.errors import InputError, UnknownModelError
from models_zoo import ZooEntry, catalog, catalog_sources, load

CATALOG = catalog()
ZOO_NAMES = [entry.name for entry in CATALOG]
EXPECTED_ZOO = {
    "zoo:resnet20",
    "zoo:resnet56",
    "zoo:vgg11_bn",
    "zoo:densenet_tiny",
    "zoo:mobilenet_tiny",
    "zoo:shufflenet_tiny",
    "zoo:vit_tiny",
    "zoo:layerscale_net",
    "zoo:gn_net",
    "zoo:small_cnn",
    "zoo:plain_cnn",
    "zoo:resnet8",
}


pytestmark = pytest.mark.usefixtures("single_thread")


def _traced_targets(model: nn.Module) -> list[str]:
    """Call targets of a traced model: module class names for call_module, names otherwise."""
    graph = fx.symbolic_trace(model)
    targets = []
    for node in graph.graph.nodes:
        if node.op == "call_module":
            targets.append(type(graph.get_submodule(node.target)).__name__)
        elif node.op in ("call_function", "call_method", "get_attr"):
            targets.append(getattr(node.target, "__name__", str(node.target)))
    return targets


def _modules(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


# ------------------------------------------------------------------------------------- catalog


def test_catalog_lists_the_in_repo_models() -> None:
    assert set(ZOO_NAMES) == EXPECTED_ZOO
    assert len(ZOO_NAMES) == len(set(ZOO_NAMES))
    for entry in CATALOG:
        assert isinstance(entry, ZooEntry)
        assert entry.description
        assert entry.input_shape == (1, 3, 32, 32)
    with pytest.raises(AttributeError):
        CATALOG[0].name = "zoo:other"  # type: ignore[misc]


def test_catalog_sources_count_external_models() -> None:
    sources = {source.prefix: source for source in catalog_sources()}
    assert set(sources) == {"torchvision:", "timm:"}
    assert sources["torchvision:"].count is not None and sources["torchvision:"].count > 50
    assert sources["timm:"].count is not None and sources["timm:"].count > 500


@pytest.mark.parametrize("entry", CATALOG, ids=ZOO_NAMES)
def test_zoo_model_loads_traces_and_matches_eager(entry: ZooEntry) -> None:
    model, inputs = load(entry.name)
    assert not model.training
    assert tuple(inputs[0].shape) == entry.input_shape
    with torch.no_grad():
        eager = model(*inputs)
        traced = fx.symbolic_trace(model)(*inputs)
    assert eager.shape == (1, entry.num_classes)
    assert torch.isfinite(eager).all()
    assert torch.equal(traced, eager)


@pytest.mark.parametrize("name", ["zoo:resnet20", "zoo:vit_tiny"])
def test_load_is_deterministic_and_leaves_global_rng_alone(name: str) -> None:
    state = torch.random.get_rng_state()
    first_model, first_inputs = load(name)
    second_model, second_inputs = load(name)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first_inputs[0], second_inputs[0])
    first, second = first_model.state_dict(), second_model.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_batchnorm_statistics_are_not_the_defaults() -> None:
    model, _ = load("zoo:resnet20")
    norm = _modules(model, nn.BatchNorm2d)[0]
    assert not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))
    assert not torch.allclose(norm.weight, torch.ones_like(norm.weight))


# ----------------------------------------------------------- each model has what it should stress


def test_resnets_have_projection_shortcuts_at_stage_boundaries() -> None:
    for name, depth in (("zoo:resnet20", 20), ("zoo:resnet56", 56)):
        model, _ = load(name)
        convs = _modules(model, nn.Conv2d)
        projections = [c for c in convs if c.kernel_size == (1, 1)]
        assert len(convs) == depth - 1 + len(projections)  # depth counts convs + fc, not shortcuts
        assert [(c.in_channels, c.out_channels, c.stride) for c in projections] == [
            (16, 32, (2, 2)),
            (32, 64, (2, 2)),
        ]


def test_vgg_flattens_a_spatial_map() -> None:
    model, _ = load("zoo:vgg11_bn")
    first_linear = _modules(model, nn.Linear)[0]
    assert first_linear.in_features == 512 * 2 * 2


def test_densenet_concatenates_repeatedly() -> None:
    model, _ = load("zoo:densenet_tiny")
    assert _traced_targets(model).count("cat") >= 8


def test_mobilenet_has_depthwise_multiplier_se_and_hardswish() -> None:
    model, _ = load("zoo:mobilenet_tiny")
    convs = _modules(model, nn.Conv2d)
    assert any(c.groups == c.in_channels and c.out_channels == 2 * c.in_channels for c in convs)
    assert any(c.groups == c.in_channels == c.out_channels > 1 for c in convs)
    targets = _traced_targets(model)
    assert {"Hardswish", "Hardsigmoid", "AdaptiveAvgPool2d", "mul", "add"} <= set(targets)


def test_shufflenet_splits_shuffles_and_concatenates() -> None:
    model, _ = load("zoo:shufflenet_tiny")
    targets = _traced_targets(model)
    assert {"chunk", "cat", "transpose", "view"} <= set(targets)


def test_vit_uses_its_own_attention_and_loose_parameters() -> None:
    model, _ = load("zoo:vit_tiny")
    assert not _modules(model, nn.MultiheadAttention)
    targets = _traced_targets(model)
    assert {"softmax", "permute", "matmul", "cat", "cls_token", "pos_embed"} <= set(targets)
    assert model.pos_embed.shape == (1, (32 // 4) ** 2 + 1, 64)


def test_layerscale_net_multiplies_a_loose_gamma_in_channels_last() -> None:
    model, _ = load("zoo:layerscale_net")
    targets = _traced_targets(model)
    assert sum(t.endswith(".gamma") for t in targets) == 4
    assert {"permute", "LayerNorm", "GELU"} <= set(targets)
    assert any(c.groups == c.in_channels > 1 and c.kernel_size == (7, 7) for c in _modules(model, nn.Conv2d))


def test_gn_net_has_groupnorm_and_grouped_convs() -> None:
    model, _ = load("zoo:gn_net")
    assert _modules(model, nn.GroupNorm)
    assert any(c.groups == 4 for c in _modules(model, nn.Conv2d))


# ------------------------------------------------------------------------------ spec resolution


def test_torchvision_spec_uses_224_input() -> None:
    model, (x,) = load("torchvision:resnet18")
    assert x.shape == (1, 3, 224, 224)
    assert not model.training
    with torch.no_grad():
        assert model(x).shape == (1, 1000)


def test_torchvision_input_size_override_rebuilds_fixed_size_vit() -> None:
    model, (x,) = load("torchvision:vit_b_32", input_size=64)
    assert x.shape == (1, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (1, 1000)


def test_timm_spec_takes_input_size_from_pretrained_cfg() -> None:
    model, (x,) = load("timm:resnet18")
    assert tuple(x.shape) == (1, *model.pretrained_cfg["input_size"])
    assert x.shape == (1, 3, 224, 224)
    _, (small,) = load("timm:resnet18", input_size=64)
    assert small.shape == (1, 3, 64, 64)


def test_package_module_factory_spec_matches_zoo_spec() -> None:
    model, inputs = load("models_zoo.resnet:resnet20")
    zoo_model, zoo_inputs = load("zoo:resnet20")
    assert torch.equal(inputs[0], zoo_inputs[0])
    with torch.no_grad():
        assert torch.equal(model(*inputs), zoo_model(*zoo_inputs))


def test_input_size_override_for_zoo_models() -> None:
    for name in ("zoo:vgg11_bn", "zoo:vit_tiny", "models_zoo.resnet:resnet20"):
        model, (x,) = load(name, input_size=64)
        assert x.shape == (1, 3, 64, 64)
        with torch.no_grad():
            assert model(x).shape == (1, 10)


@pytest.fixture
def model_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(body: str) -> Path:
        path = tmp_path / "user_models.py"
        header = "import torch\nfrom torch import nn\n"
        path.write_text(header + textwrap.dedent(body))
        return path

    return write


def test_file_factory_returning_module_gets_default_input(model_file: Callable[[str], Path]) -> None:
    path = model_file(
        """
        def make():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        """
    )
    model, (x,) = load(f"{path}:make")
    assert x.shape == (1, 3, 224, 224)
    assert not model.training
    _, (small,) = load(f"{path}:make", input_size=40)
    assert small.shape == (1, 3, 40, 40)


def test_file_factory_example_input_shape_and_tuple_return(model_file: Callable[[str], Path]) -> None:
    path = model_file(
        """
        def with_shape():
            model = nn.Linear(8, 2)
            model.example_input_shape = (1, 8)
            return model

        def with_inputs():
            return nn.Linear(5, 3), torch.ones(2, 5)
        """
    )
    _, (x,) = load(f"{path}:with_shape")
    assert x.shape == (1, 8)
    model, inputs = load(f"{path}:with_inputs")
    assert isinstance(model, nn.Linear) and len(inputs) == 1
    assert torch.equal(inputs[0], torch.ones(2, 5))


def test_file_factory_bad_return_type_is_an_input_error(model_file: Callable[[str], Path]) -> None:
    path = model_file("def broken():\n    return 42\n")
    with pytest.raises(InputError, match="broken"):
        load(f"{path}:broken")


# -------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [
        ("zoo:resnet21", "zoo:resnet20"),
        ("zoo:vit_tiyn", "zoo:vit_tiny"),
        ("torchvision:resnet81", "torchvision:resnet18"),
        ("timm:resnet19", "timm:resnet18"),
        ("models_zoo.resnet:resnet21", "models_zoo.resnet:resnet20"),
        ("resnet20", "zoo:resnet20"),
    ],
)
def test_unknown_spec_names_spec_and_suggests(spec: str, suggestion: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        load(spec)
    message = str(info.value)
    assert spec in message and suggestion in message
    assert "\n" not in message


def test_unknown_spec_points_to_the_zoo_listing() -> None:
    with pytest.raises(UnknownModelError, match="graphprune zoo"):
        load("zoo:nonexistent_model")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("zoo:", "malformed"),
        ("no_such_dir/missing.py:make", "does not exist"),
        ("models_zoo.not_a_module:make", "no module named"),
        ("models_zoo.resnet:STAGE_WIDTHS", "not a callable"),
        ("not a module:make", "malformed"),
        ("torchvision:quantized_mobilenet_v2", "quantization models are not supported"),
        ("timm:resnet18.no_such_tag", "pretrained tag"),
    ],
)
def test_malformed_specs_raise_unknown_model_error(spec: str, fragment: str) -> None:
    with pytest.raises(UnknownModelError, match=fragment) as info:
        load(spec)
    assert spec in str(info.value) or spec.split(":")[0] in str(info.value)


def test_public_api() -> None:
    assert set(models_zoo.__all__) == {"ZooEntry", "ZooSource", "catalog", "catalog_sources", "check_spec", "load"}
    with pytest.raises(InputError):
        load("zoo:resnet20", input_size=0)


@pytest.mark.parametrize("build", ["small_cnn", "resnet8", "resnet20"])
def test_paper_init_is_kaiming_normal_with_unit_norms(build: str) -> None:
    """``init="paper"``: the pruning papers' initialisation (kaiming-normal weights, gamma 1, beta 0,
    BatchNorm statistics at their defaults), seeded, instead of the zoo's randomised norms."""
    from models_zoo import resnet, small

    factory = getattr(small, build, None) or getattr(resnet, build)
    model, inputs = factory(16, seed=3, init="paper")
    again, _ = factory(16, seed=3, init="paper")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    zoo, _ = factory(16, seed=3)
    assert not torch.equal(model.state_dict()["fc.weight"], zoo.state_dict()["fc.weight"])
    weights = torch.cat([(m.weight.detach() / (2 / m.weight[0].numel()) ** 0.5).flatten() for m in model.modules()
                         if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert float(weights.std()) == pytest.approx(1.0, abs=0.05) and abs(float(weights.mean())) < 0.05
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(bool((m.weight == 1).all() and (m.bias == 0).all() and (m.running_mean == 0).all()
                              and (m.running_var == 1).all()) for m in norms)
    assert all(m.bias is None or bool((m.bias == 0).all()) for m in model.modules() if isinstance(m, nn.Linear))
    assert not model.training and inputs[0].shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="init must be one of zoo, paper"):
        factory(16, init="xavier")


def test_plain_cnn_is_small_cnn_without_batchnorm() -> None:
    """The BN-free network of the PX benchmark: the same convs (with biases, zero under the paper's
    initialisation) and no norm layer anywhere."""
    from models_zoo import small

    plain, inputs = small.plain_cnn(16, seed=0, init="paper")
    with_bn, _ = small.small_cnn(16, seed=0, init="paper")
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert [c.weight.shape for c in convs] == [c.weight.shape for c in with_bn.modules() if isinstance(c, nn.Conv2d)]
    assert all(c.bias is not None and bool((c.bias == 0).all()) for c in convs)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in plain.modules())
    assert plain(*inputs).shape == (1, 10)
