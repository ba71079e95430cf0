"""``--data SPEC`` / ``[data] name``: built-ins unchanged, image folders with the model's preprocessing and a
validation split, the user's factories returning datasets or loaders; every failure one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import models_zoo
from graphprune.cli import main
from graphprune.errors import InputError, UserCodeError
from graphprune.training.datasets import DatasetBatches
from models_zoo.data import load_dataset
from models_zoo.userdata import load_data
from tests.imagefolder import write_digits

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits"), per_class=20)


def _zoo(spec: str = "zoo:resnet8", size: int | None = None):
    return models_zoo.load(spec, input_size=size)


def test_builtin_is_the_zoo_task_unchanged() -> None:
    model, inputs = _zoo()
    data = load_data({"name": "digits", "batch_size": 32}, model, inputs)
    train, test = load_dataset("digits", 32, 32, "train"), load_dataset("digits", 32, 32, "test")
    assert torch.equal(data.train.x, train.x) and torch.equal(data.val.y, test.y)
    assert data.train.batch_size == 32 and data.record["val_examples"] == len(test.y)


def test_imagefolder_default_preprocessing_and_stratified_split(digits_dir: Path) -> None:
    model, inputs = _zoo()
    data = load_data({"name": f"imagefolder:{digits_dir}", "batch_size": 16, "val_split": 0.25}, model, inputs)
    assert data.record["train_examples"] == 150 and data.record["val_examples"] == 50
    assert data.record["classes"] == 10 and data.record["preprocessing"]["from"].startswith("default")
    val_labels = torch.cat([y for _, y in data.val])
    assert torch.bincount(val_labels).tolist() == [5] * 10  # a quarter of every class
    x, y = next(iter(data.train))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.long
    # ImageNet normalisation of a greyscale PNG: black pixels are -mean/std per channel
    black = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    assert torch.allclose(x.amin((0, 2, 3)), black, atol=1e-4)
    again, _ = next(iter(data.train))
    assert torch.equal(x, again), "iterating twice must give the same first batch"
    assert isinstance(data.train, DatasetBatches)
    assert not torch.equal(next(data.train.epoch(1))[0], x), "epoch 1 is another order"


def test_imagefolder_takes_the_models_input_size(digits_dir: Path) -> None:
    model, inputs = _zoo(size=16)
    x, _ = next(iter(load_data({"name": f"imagefolder:{digits_dir}"}, model, inputs).train))
    assert x.shape[1:] == (3, 16, 16)


def test_imagefolder_uses_timm_data_config(digits_dir: Path) -> None:
    pytest.importorskip("timm")
    model, inputs = models_zoo.load("timm:test_resnet", input_size=32)
    data = load_data({"name": f"imagefolder:{digits_dir}", "batch_size": 8}, model, inputs)
    record = data.record["preprocessing"]
    assert record["from"] == "timm data config" and record["mean"] == [0.5, 0.5, 0.5]
    assert record["crop_pct"] == model.pretrained_cfg["crop_pct"]
    x, _ = next(iter(data.train))
    assert x.shape == (8, 3, 32, 32) and float(x.min()) == pytest.approx(-1.0)  # (0 - 0.5) / 0.5


def test_imagefolder_train_val_layout(tmp_path: Path) -> None:
    root = write_digits(tmp_path, per_class=10, layout="split")
    model, inputs = _zoo()
    data = load_data({"name": f"imagefolder:{root}"}, model, inputs)
    assert data.record["layout"] == "train/ + val/"
    assert (data.record["train_examples"], data.record["val_examples"]) == (80, 20)


def _factory_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mydata.py"
    path.write_text("import torch\nfrom torch.utils.data import TensorDataset, DataLoader\n\n" + body)
    return path


def test_factory_returning_train_and_val(tmp_path: Path) -> None:
    path = _factory_file(tmp_path, "def make():\n"
                         "    x, y = torch.randn(40, 3, 8, 8), torch.arange(40) % 4\n"
                         "    val = DataLoader(TensorDataset(x[30:], y[30:]), batch_size=5)\n"
                         "    return TensorDataset(x[:30], y[:30]), val\n")
    model, inputs = _zoo(size=8)
    data = load_data({"name": f"{path}:make", "batch_size": 10}, model, inputs)
    assert len(data.train) == 3 and isinstance(data.val, DataLoader)
    assert (data.record["train_examples"], data.record["val_examples"]) == (30, 10)


def test_factory_dataloader_split_keeps_its_batch_size(tmp_path: Path) -> None:
    path = _factory_file(tmp_path, "def make():\n"
                         "    ds = TensorDataset(torch.randn(50, 3, 8, 8), torch.arange(50) % 5)\n"
                         "    return {'train': DataLoader(ds, batch_size=7, shuffle=True)}\n")
    model, inputs = _zoo(size=8)
    data = load_data({"name": f"{path}:make", "val_split": 0.2}, model, inputs)
    assert data.train.batch_size == 7 and (data.record["train_examples"], data.record["val_examples"]) == (40, 10)


@pytest.mark.parametrize(("body", "error", "pattern"), [
    ("def make():\n    raise RuntimeError('no disk')\n", UserCodeError, r"mydata\.py:5: RuntimeError: no disk"),
    ("import not_a_module_xyz\ndef make():\n    pass\n", UserCodeError, r"mydata\.py:4: ModuleNotFoundError"),
    ("def make():\n    return 42\n", InputError, "expected a torch Dataset or DataLoader, got int"),
    ("class Bad(torch.utils.data.Dataset):\n    def __len__(self):\n        return 3\n"
     "    def __getitem__(self, i):\n        return 1 / 0\n\ndef make():\n    return Bad()\n", UserCodeError,
     r"reading the first training batch: .*mydata\.py:8: ZeroDivisionError"),
    ("def other():\n    pass\n", InputError, "no factory in .* named 'make'"),
])
def test_factory_failures_are_one_line(tmp_path: Path, body: str, error: type, pattern: str) -> None:
    path = _factory_file(tmp_path, body)
    model, inputs = _zoo(size=8)
    with pytest.raises(error, match=pattern) as info:
        load_data({"name": f"{path}:make", "val_split": 0.0}, model, inputs)
    assert "\n" not in str(info.value)


def test_missing_sources_are_named(tmp_path: Path) -> None:
    model, inputs = _zoo()
    with pytest.raises(InputError, match="no such directory"):
        load_data({"name": f"imagefolder:{tmp_path / 'none'}"}, model, inputs)
    with pytest.raises(InputError, match="does not exist"):
        load_data({"name": f"{tmp_path / 'none.py'}:make"}, model, inputs)
    with pytest.raises(InputError, match="no module named 'nopkg_xyz'"):
        load_data({"name": "nopkg_xyz.data:make"}, model, inputs)
    with pytest.raises(InputError, match="val_split does not apply to a built-in"):
        load_data({"name": "digits", "val_split": 0.2}, model, inputs)


def test_cli_scores_on_an_image_folder(digits_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    assert main(["compile", "zoo:resnet8", "--data", f"imagefolder:{digits_dir}", "--score", "taylor",
                 "--report", str(report), "-q"]) == 0
    record = json.loads(report.read_text())["artifacts"]["data"]
    assert record["source"] == f"imagefolder:{digits_dir}" and record["train_examples"] == 180


def test_python_api_accepts_datasets_directly() -> None:
    model, inputs = _zoo(size=8)
    ds = TensorDataset(torch.randn(20, 3, 8, 8), torch.arange(20) % 10)
    import graphprune

    result = graphprune.compile(model, inputs, score="taylor", data=DataLoader(ds, batch_size=10))
    assert result.report.params_after < result.report.params_before
