"""A user's own data: image folders, npz files, MNIST idx files, plug-in datasets, and their errors.

Every file here is written by the test itself and loaded through the same ``load_dataset`` and
``nni-hwnas search`` code users run.
"""

from __future__ import annotations

import gzip
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from nni_hwnas.cli import main
from nni_hwnas.data import registry
from nni_hwnas.data.datasets import DatasetSplits, dataset_names, load_dataset
from nni_hwnas.errors import UserError

CLASSES = ("cat", "dog", "emu")


def write_folder(root: Path, per_class: int = 10, size: tuple[int, int] = (8, 8), splits=("train",),
                 mode: str = "RGB", seed: int = 0) -> Path:
    """PNG images whose mean brightness encodes the class, in ``root/<split>/<class>/``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in splits:
        for k, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                shape = (size[0], size[1], 3) if mode == "RGB" else size
                arr = np.clip(rng.normal(40 + 80 * k, 20, shape), 0, 255).astype(np.uint8)
                Image.fromarray(arr, mode).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NNI_HWNAS_CACHE", str(folder))
    return folder


# ------------------------------------------------------------------------------------ folder


def test_folder_loads_states_and_splits_by_seed(tmp_path, cache):
    root = write_folder(tmp_path / "imgs", per_class=10)
    a = load_dataset("folder", path=str(root), seed=1, val_fraction=0.2, test_fraction=0.2)
    assert isinstance(a, DatasetSplits)
    assert a.num_classes == 3 and a.input_shape == (3, 8, 8)
    assert (len(a.train_y), len(a.val_y), len(a.test_y)) == (18, 6, 6)  # 2 per class in val and test
    for y in (a.train_y, a.val_y, a.test_y):
        assert sorted(torch.bincount(y, minlength=3).tolist()) == [len(y) // 3] * 3
    assert "3 channel(s), 8x8, 3 classes" in a.describe() and "horizontal flip" in a.describe()
    assert "decoded, cached" in a.source

    b = load_dataset("folder", path=str(root), seed=1, val_fraction=0.2, test_fraction=0.2)
    assert "cache " in b.source and "decoded" not in b.source  # second load reads the tensor file
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    c = load_dataset("folder", path=str(root), seed=2, val_fraction=0.2, test_fraction=0.2)
    assert not torch.equal(a.test_x, c.test_x)
    assert len(list(cache.glob("folder-imgs-*.pt"))) == 1


def test_folder_uses_given_splits_grayscale_and_augment_override(tmp_path, cache):
    root = write_folder(tmp_path / "gray", per_class=4, splits=("train", "val", "test"), mode="L")
    d = load_dataset("folder", path=str(root), seed=0, augment={"flip": False, "crop_padding": 1})
    assert d.input_shape == (1, 8, 8) and (len(d.train_y), len(d.val_y), len(d.test_y)) == (12, 12, 12)
    assert "splits as given" in d.source
    assert d.augment.crop_padding == 1 and not d.augment.horizontal_flip


def test_folder_change_invalidates_cache(tmp_path, cache):
    root = write_folder(tmp_path / "imgs", per_class=4)
    load_dataset("folder", path=str(root), seed=0)
    write_folder(tmp_path / "more", per_class=1)
    (tmp_path / "more" / "train" / "cat" / "000.png").rename(root / "train" / "cat" / "new.png")
    d = load_dataset("folder", path=str(root), seed=0)
    assert "decoded" in d.source and len(d.train_y) + len(d.val_y) + len(d.test_y) == 13


def test_folder_mixed_sizes_resized_when_asked(tmp_path, cache):
    root = write_folder(tmp_path / "imgs", per_class=4)
    write_folder(tmp_path / "big", per_class=1, size=(12, 10))
    (tmp_path / "big" / "train" / "dog" / "000.png").rename(root / "train" / "dog" / "big.png")
    d = load_dataset("folder", path=str(root), seed=0, image_size=[8, 8])
    assert d.input_shape == (3, 8, 8) and len(d.train_y) + len(d.val_y) + len(d.test_y) == 13


# ------------------------------------------------------------------------------------ npz and idx


def test_npz_medmnist_keys_and_key_map(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8), np.repeat(np.arange(4), 10)
    np.savez(tmp_path / "med.npz", train_images=x, train_labels=y[:, None],
             test_images=x[:8], test_labels=y[:8, None])
    d = load_dataset("npz", path=str(tmp_path / "med.npz"), seed=3, val_fraction=0.3)
    assert d.num_classes == 4 and d.input_shape == (3, 6, 6)
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (28, 12, 8)

    np.savez(tmp_path / "keras.npz", x_train=x[:, :, :, 0], y_train=y)
    keys = {"train_images": "x_train", "train_labels": "y_train"}
    e = load_dataset("npz", path=str(tmp_path / "keras.npz"), seed=3, keys=keys)
    f = load_dataset("npz", path=str(tmp_path / "keras.npz"), seed=3, keys=keys)
    assert e.input_shape == (1, 6, 6) and e.num_classes == 4
    assert torch.equal(e.val_x, f.val_x) and len(e.train_y) + len(e.val_y) + len(e.test_y) == 40


def _write_idx(path: Path, arr: np.ndarray) -> None:
    """The idx format torchvision reads: magic (0, 0, uint8 type 8, ndim), big-endian dims, data."""
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for kind, n in (("train", 50), ("t10k", 20)):
        _write_idx(raw / f"{kind}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{kind}-labels-idx1-ubyte", np.arange(n) % 10)
    d = load_dataset("mnist", data_root=str(tmp_path), seed=0, val_fraction=0.2)
    assert d.num_classes == 10 and d.input_shape == (1, 28, 28)
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (40, 10, 20)
    assert not d.augment.horizontal_flip
    assert "mnist" in dataset_names() and "fashion_mnist" in dataset_names()


# ------------------------------------------------------------------------------------ registry


class _FakeEntryPoint:
    def __init__(self, name: str, target, value: str = "toy_pkg:load"):
        self.name, self.value, self._target = name, value, target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _toy_loader(request: registry.DatasetRequest) -> DatasetSplits:
    from nni_hwnas.data.assemble import assemble_splits

    x = torch.arange(60 * 16, dtype=torch.float32).reshape(60, 1, 4, 4)
    return assemble_splits("toy", {"train": (x, torch.arange(60) % 3)}, num_classes=3, seed=request.seed,
                           val_fraction=request.val_fraction, test_fraction=request.test_fraction,
                           augment=request.augment, source=f"toy {request.option('path')}")


def test_entry_point_adds_a_dataset_by_name(monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda group: [_FakeEntryPoint("toy", _toy_loader)]
                        if group == registry.ENTRY_POINT_GROUP else [])
    assert "toy" in dataset_names() and "folder" in dataset_names()
    d = load_dataset("toy", seed=0, path="anything")
    assert d.num_classes == 3 and "toy anything" in d.source


def test_broken_plugin_is_one_line(monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda group: [_FakeEntryPoint("bad", ImportError("no torchaudio"))])
    with pytest.raises(UserError, match="dataset plug-in 'bad' .* failed to load .*no torchaudio"):
        dataset_names()


# ------------------------------------------------------------------------------------ errors


def _search(tmp_path: Path, dataset_yaml: str, capsys) -> tuple[int, str]:
    config = tmp_path / "exp.yaml"
    config.write_text(f"dataset: {dataset_yaml}\nspace: {{preset: conv_net_small}}\n")
    code = main(["search", "--config", str(config)])
    return code, capsys.readouterr().err


def _empty_class(root: Path) -> str:
    write_folder(root / "imgs", per_class=2)
    (root / "imgs" / "train" / "fox").mkdir()
    return "class folder {root}/imgs/train/fox has no image files"


def _mixed_sizes(root: Path) -> str:
    write_folder(root / "imgs", per_class=2)
    write_folder(root / "big", per_class=1, size=(12, 10))
    (root / "big" / "train" / "dog" / "000.png").rename(root / "imgs" / "train" / "dog" / "big.png")
    return "is 10x12 pixels but"


def _unreadable(root: Path) -> str:
    write_folder(root / "imgs", per_class=2)
    (root / "imgs" / "train" / "emu" / "broken.jpg").write_bytes(b"not a jpeg")
    return "cannot read image {root}/imgs/train/emu/broken.jpg"


def _cifar_checksum(root: Path) -> str:
    batches = root / "imgs" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in ("data_batch_1", "batches.meta", "test_batch"):
        (batches / name).write_bytes(b"rebuilt")
    return "fails torchvision's MD5 check for the official python batches; for a rebuilt or re-encoded copy use dataset: {name: folder"


@pytest.mark.parametrize("setup, dataset_yaml", [
    (_empty_class, "{name: folder, path: imgs, cache: false}"),
    (_mixed_sizes, "{name: folder, path: imgs, cache: false}"),
    (_unreadable, "{name: folder, path: imgs, cache: false}"),
    (_cifar_checksum, "{name: cifar10, data_root: imgs}"),
    (lambda root: "has no train/ folder", "{name: folder, path: .}"),
    (lambda root: "dataset `npz` needs dataset.path", "{name: npz}"),
    (lambda root: "dataset.keys is not read by dataset 'digits'", "{name: digits, keys: {train_images: x}}"),
    (lambda root: "dataset.image_size must be [height, width]", "{name: folder, path: ., image_size: [32]}"),
    (lambda root: "`dataset.augment.crop_padding` must be >= 0", "{name: digits, augment: {crop_padding: -1}}"),
])
def test_bad_data_is_one_line_exit_2(tmp_path, capsys, cache, setup, dataset_yaml):
    fragment = setup(tmp_path).replace("{root}", str(tmp_path))
    if "image_size" in dataset_yaml:
        write_folder(tmp_path, per_class=1)
    code, err = _search(tmp_path, dataset_yaml, capsys)
    assert code == 2, err
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_npz_missing_key_names_the_arrays_it_has(tmp_path):
    np.savez(tmp_path / "k.npz", x_train=np.zeros((4, 5, 5), np.uint8), y_train=np.zeros(4, np.int64))
    with pytest.raises(UserError, match=r"has no array 'train_images' \(it has: x_train, y_train\); name yours "
                                        r"with dataset.keys"):
        load_dataset("npz", path=str(tmp_path / "k.npz"))


# ------------------------------------------------------------------------------------ end to end


def test_search_on_a_tiny_folder_through_nni_then_train_from_it(tmp_path, nni_home, cache):
    """The user's path for their own images: search (a real NNI experiment), then train --from."""
    import json
    import subprocess
    import sys

    from conftest import REPO, free_port

    write_folder(tmp_path / "imgs", per_class=12, size=(12, 12))
    config = tmp_path / "own.yaml"
    config.write_text(
        "name: own\nseed: 5\n"
        "dataset: {name: folder, path: imgs, augment: {flip: false, crop_padding: 1}}\n"
        "space: {preset: conv_net_small}\nstrategy: {name: Random}\n"
        "evaluator: {epochs: 1, batch_size: 8, latency_repeats: 3, warmup_epochs: 0.5, grad_clip_norm: 1.0,"
        " label_smoothing: 0.1}\n"
        "experiment: {max_trials: 2, concurrency: 2, working_directory: exps}\n")
    out = tmp_path / "results"
    script = Path(sys.executable).with_name("nni-hwnas")
    run = subprocess.run([str(script), "search", "--config", str(config), "--port", str(free_port()),
                          "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "dataset folder: 3 channel(s), 12x12, 3 classes, train/val/test 24/6/6" in run.stdout
    assert "augment: random crop with padding 1" in run.stdout
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) == 2 and all(0.0 <= t["accuracy"] <= 1.0 for t in trials)
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["dataset"]["path"] == str(tmp_path / "imgs") and record["seed"] == 5
    assert record["dataset_summary"].startswith("dataset folder: 3 channel(s), 12x12, 3 classes")

    assert main(["train", "--from", str(out), "--epochs", "1"]) == 0
    retrained = json.loads(next(out.glob("retrain-*/retrain.json")).read_text())
    assert 0.0 <= retrained["test_accuracy"] <= 1.0
    assert next(out.glob("retrain-*/model.onnx")).stat().st_size > 0


def test_npz_reads_a_real_medmnist_file_like_its_own_loader():
    from conftest import SHARED_DATA

    path = SHARED_DATA / "breastmnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} is not there (the shared data folder sits next to the main checkout)")
    own = load_dataset("npz", path=str(path), seed=0)
    med = load_dataset("breastmnist", data_root=str(SHARED_DATA), seed=0)
    assert own.num_classes == med.num_classes == 2
    assert torch.equal(own.train_y, med.train_y) and torch.allclose(own.test_x, med.test_x)
