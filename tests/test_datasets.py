"""Tests for nni_hwnas.data.datasets and nni_hwnas.data.augment (offline: sklearn digits, npz files we write,
and the real MedMNIST copies in the shared data folder)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nni_hwnas.data.augment import AugmentSpec, augment_batch
from nni_hwnas.data.datasets import DatasetSplits, dataset_names, load_dataset, subset
from nni_hwnas.errors import UserError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _write_medmnist_npz(path: Path, sizes: dict[str, int], image_shape: tuple[int, ...],
                        label_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a file in medmnist's own npz layout (uint8 images and labels) and return its arrays."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, num_classes, size=(n, *label_shape), dtype=np.uint8)
    np.savez_compressed(path, **arrays)
    return arrays


def _all_x(d: DatasetSplits) -> list[torch.Tensor]:
    return [d.train_x, d.val_x, d.test_x]


def _assert_standardised(x: torch.Tensor) -> None:
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-4), mean
    assert torch.allclose(std, torch.ones_like(std), atol=1e-3), std


# ------------------------------------------------------------------------------------ names


def test_dataset_names_lists_2d_medmnist_and_builtin():
    names = dataset_names()
    for expected in ("digits", "cifar10", "octmnist", "pneumoniamnist", "breastmnist", "chestmnist", "bloodmnist"):
        assert expected in names
    assert not [n for n in names if n.endswith("3d")]


def test_load_dataset_unknown_name_raises_usererror_with_hint():
    with pytest.raises(UserError, match="did you mean 'octmnist'"):
        load_dataset("octmnst")


# ------------------------------------------------------------------------------------ digits


def test_load_dataset_digits_shapes_classes_and_standardised():
    d = load_dataset("digits", seed=0)
    assert d.name == "digits" and d.num_classes == 10 and d.input_shape == (1, 8, 8)
    assert d.task == "multi-class" and not d.is_multilabel
    for x in _all_x(d):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
    for y in (d.train_y, d.val_y, d.test_y):
        assert y.dtype == torch.int64 and y.dim() == 1
    assert len(d.train_x) + len(d.val_x) + len(d.test_x) == 1797
    assert len(d.val_x) == pytest.approx(0.2 * 1797, abs=2)
    assert len(d.test_x) == pytest.approx(0.2 * 1797, abs=2)
    assert set(d.train_y.tolist()) == set(range(10))
    _assert_standardised(d.train_x)
    assert d.augment == AugmentSpec(crop_padding=1, horizontal_flip=False)


def _raw_rows(d: DatasetSplits) -> list[Counter]:
    """Each split's samples mapped back to raw digit pixels (0..16), as multisets of row bytes.

    Standardisation is one affine map with a positive scale shared by all splits, so the smallest
    standardised value is raw 0 and the largest raw 16 (both occur in the train split).
    """
    lo, hi = float(d.train_x.min()), float(d.train_x.max())
    scale = 16.0 / (hi - lo)
    out = []
    for x in _all_x(d):
        rows = ((x.reshape(len(x), -1).double() - lo) * scale).round().to(torch.int64).numpy()
        out.append(Counter(row.tobytes() for row in rows))
    return out


def _digits_raw() -> Counter:
    from sklearn.datasets import load_digits

    raw = load_digits().data.astype(np.int64)
    return Counter(row.tobytes() for row in raw)


def test_load_dataset_digits_splits_disjoint_and_cover_all():
    d = load_dataset("digits", seed=0)
    train, val, test = _raw_rows(d)
    # The 1797 digit images are pairwise distinct, so pixel rows identify samples.
    assert not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
    assert train + val + test == _digits_raw()  # multiset equality: each image in exactly one split
    assert sum((train + val + test).values()) == 1797


def test_load_dataset_digits_same_seed_same_split_other_seed_differs():
    a = load_dataset("digits", seed=3)
    b = load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    for xa, xb in zip(_all_x(a), _all_x(b)):
        assert torch.equal(xa, xb)
    assert torch.equal(a.train_y, b.train_y) and torch.equal(a.test_y, b.test_y)
    assert _raw_rows(a)[1] != _raw_rows(c)[1]
    assert _raw_rows(a)[2] != _raw_rows(c)[2]


def test_load_dataset_digits_bad_fractions_raise_usererror():
    with pytest.raises(UserError, match="val_fraction"):
        load_dataset("digits", val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(UserError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)


# ------------------------------------------------------------------------------------ MedMNIST (written)


def test_load_dataset_medmnist_grey_npz_through_medmnist(tmp_path):
    sizes = {"train": 40, "val": 12, "test": 16}
    arrays = _write_medmnist_npz(tmp_path / "octmnist.npz", sizes, (28, 28), (1,), num_classes=4)
    d = load_dataset("octmnist", data_root=tmp_path)
    assert d.name == "octmnist" and d.num_classes == 4 and d.input_shape == (1, 28, 28)
    assert d.task == "multi-class" and not d.is_multilabel
    for split, x, y in (("train", d.train_x, d.train_y), ("val", d.val_x, d.val_y), ("test", d.test_x, d.test_y)):
        assert x.shape == (sizes[split], 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (sizes[split],) and y.dtype == torch.int64
        assert torch.equal(y, torch.from_numpy(arrays[f"{split}_labels"].reshape(-1).astype(np.int64)))
    _assert_standardised(d.train_x)
    # Values are the file's pixels, standardised with the train split's mean/std.
    raw = arrays["train_images"].astype(np.float64)
    expected = (raw - raw.mean()) / raw.std()
    assert np.allclose(d.train_x[:, 0].numpy(), expected, atol=1e-4)
    assert str(tmp_path / "octmnist.npz") in d.source
    assert d.augment == AugmentSpec(crop_padding=2, horizontal_flip=True)


def test_load_dataset_medmnist_rgb_npz_gives_three_channels_in_order(tmp_path):
    sizes = {"train": 30, "val": 10, "test": 10}
    arrays = _write_medmnist_npz(tmp_path / "bloodmnist.npz", sizes, (28, 28, 3), (1,), num_classes=8)
    d = load_dataset("bloodmnist", data_root=tmp_path)
    assert d.num_classes == 8 and d.input_shape == (3, 28, 28)
    assert d.train_x.shape == (30, 3, 28, 28) and d.test_x.shape == (10, 3, 28, 28)
    raw = arrays["train_images"].astype(np.float64)
    for c in range(3):
        expected = (raw[..., c] - raw[..., c].mean()) / raw[..., c].std()
        assert np.allclose(d.train_x[:, c].numpy(), expected, atol=1e-4)
    assert torch.equal(d.val_y, torch.from_numpy(arrays["val_labels"].reshape(-1).astype(np.int64)))


def test_load_dataset_medmnist_multilabel_keeps_label_matrix(tmp_path):
    sizes = {"train": 20, "val": 6, "test": 6}
    arrays = _write_medmnist_npz(tmp_path / "chestmnist.npz", sizes, (28, 28), (14,), num_classes=2)
    d = load_dataset("chestmnist", data_root=tmp_path)
    assert d.task == "multi-label" and d.is_multilabel and d.num_classes == 14
    assert d.train_y.shape == (20, 14) and d.train_y.dtype == torch.float32
    assert torch.equal(d.test_y, torch.from_numpy(arrays["test_labels"].astype(np.float32)))


def test_load_dataset_medmnist_default_root_from_env(tmp_path, monkeypatch):
    _write_medmnist_npz(tmp_path / "octmnist.npz", {"train": 8, "val": 4, "test": 4}, (28, 28), (1,), 4)
    monkeypatch.setenv("NNI_HWNAS_DATA", str(tmp_path))
    d = load_dataset("octmnist")
    assert d.train_x.shape == (8, 1, 28, 28)


def test_load_dataset_medmnist_missing_file_is_one_line_usererror(tmp_path):
    with pytest.raises(UserError) as info:
        load_dataset("octmnist", data_root=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "octmnist.npz" in msg and str(tmp_path.resolve()) in msg and "`dataset.download: true`" in msg and "--download" not in msg


def test_load_dataset_medmnist_corrupt_file_is_one_line_usererror(tmp_path):
    (tmp_path / "octmnist.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(UserError) as info:
        load_dataset("octmnist", data_root=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "octmnist.npz" in msg and str(tmp_path.resolve()) in msg


def test_load_dataset_medmnist_missing_key_is_usererror(tmp_path):
    np.savez(tmp_path / "octmnist.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(UserError, match="octmnist.npz"):
        load_dataset("octmnist", data_root=tmp_path)


class _FailingMedMNIST:
    """Stands in for a medmnist class: records its kwargs, then fails like a failed download."""

    calls: list[dict] = []

    def __init__(self, **kwargs):
        type(self).calls.append(kwargs)
        raise RuntimeError("\n    Automatic download failed! Please download octmnist.npz manually.\n    1. step\n")


def test_load_dataset_medmnist_download_failure_is_one_line_usererror(tmp_path, monkeypatch):
    import medmnist

    _FailingMedMNIST.calls = []
    monkeypatch.setattr(medmnist, "OCTMNIST", _FailingMedMNIST)
    with pytest.raises(UserError) as info:
        load_dataset("octmnist", data_root=tmp_path / "new", download=True)
    msg = str(info.value)
    assert "\n" not in msg and "octmnist.npz" in msg and str((tmp_path / "new").resolve()) in msg
    assert "Automatic download failed" in msg
    assert _FailingMedMNIST.calls[0]["download"] is True
    assert _FailingMedMNIST.calls[0]["root"] == str((tmp_path / "new").resolve())


def test_load_dataset_medmnist_passes_download_false_by_default(tmp_path, monkeypatch):
    import medmnist

    _write_medmnist_npz(tmp_path / "octmnist.npz", {"train": 4, "val": 2, "test": 2}, (28, 28), (1,), 4)
    _FailingMedMNIST.calls = []
    monkeypatch.setattr(medmnist, "OCTMNIST", _FailingMedMNIST)
    with pytest.raises(UserError, match="could not load MedMNIST file octmnist.npz"):
        load_dataset("octmnist", data_root=tmp_path)
    assert _FailingMedMNIST.calls[0]["download"] is False


# ------------------------------------------------------------------------------------ MedMNIST (real)


def _shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (real MedMNIST copies live there)")
    return SHARED_DATA


def test_load_dataset_real_breastmnist_official_splits():
    root = _shared_data()
    d = load_dataset("breastmnist", data_root=root)
    assert (len(d.train_x), len(d.val_x), len(d.test_x)) == (546, 78, 156)
    assert d.num_classes == 2 and d.input_shape == (1, 28, 28) and d.task == "binary-class"
    assert d.train_y.bincount().tolist() == [147, 399]
    _assert_standardised(d.train_x)


def test_load_dataset_real_pneumoniamnist_nonofficial_train_size_loads():
    # medmnist's len() asserts the official 4708 train samples; this copy has 3882 and must load.
    root = _shared_data()
    d = load_dataset("pneumoniamnist", data_root=root)
    assert (len(d.train_x), len(d.val_x), len(d.test_x)) == (3882, 524, 624)
    assert d.num_classes == 2 and d.input_shape == (1, 28, 28)
    assert d.train_y.bincount().tolist() == [388, 3494]
    assert d.train_y.dtype == torch.int64 and d.train_y.shape == (3882,)


# ------------------------------------------------------------------------------------ CIFAR-10


def test_load_dataset_cifar10_missing_folder_is_one_line_usererror(tmp_path):
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", data_root=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "cifar-10-batches-py" in msg and str(tmp_path.resolve()) in msg and "`dataset.download: true`" in msg and "--download" not in msg


def test_load_dataset_cifar10_corrupt_folder_is_one_line_usererror(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", data_root=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "cifar-10-batches-py" in msg and str(tmp_path.resolve()) in msg


class _FakeCIFAR10:
    """Stands in for torchvision's CIFAR10 (whose real files are md5-checked): tiny uint8 HWC data."""

    def __init__(self, root, train, download):
        rng = np.random.default_rng(0 if train else 1)
        n = 100 if train else 20
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = [int(t) for t in rng.integers(0, 10, size=n)]
        self.download = download


def test_load_dataset_cifar10_carves_val_from_train_by_seed(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeCIFAR10)
    (tmp_path / "cifar-10-batches-py").mkdir()
    a = load_dataset("cifar10", data_root=tmp_path, seed=0, val_fraction=0.2)
    b = load_dataset("cifar10", data_root=tmp_path, seed=0, val_fraction=0.2)
    c = load_dataset("cifar10", data_root=tmp_path, seed=1, val_fraction=0.2)
    assert a.input_shape == (3, 32, 32) and a.num_classes == 10 and a.task == "multi-class"
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (80, 20, 20)
    assert a.train_y.dtype == torch.int64 and a.train_x.dtype == torch.float32
    _assert_standardised(a.train_x)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    # Train and val partition the official train set: map the red channel back to raw 0..255
    # through the train split's min/max (standardisation is affine; 0 and 255 occur in train).
    fake_red = _FakeCIFAR10(None, True, False).data[..., 0]
    rmin, rmax = float(a.train_x[:, 0].min()), float(a.train_x[:, 0].max())
    seen = [
        ((r - rmin) * 255.0 / (rmax - rmin)).round().to(torch.uint8).numpy().tobytes()
        for x in (a.train_x, a.val_x)
        for r in x[:, 0]
    ]
    assert len(set(seen)) == 100
    assert sorted(seen) == sorted(img.tobytes() for img in fake_red)
    assert a.augment == AugmentSpec(crop_padding=4, horizontal_flip=True)


# ------------------------------------------------------------------------------------ subset


def test_subset_deterministic_and_consistent():
    x = torch.arange(100, dtype=torch.float32).reshape(100, 1, 1, 1)
    y = torch.arange(100)
    xs, ys = subset(x, y, 10, seed=1)
    xs2, ys2 = subset(x, y, 10, seed=1)
    xs3, _ = subset(x, y, 10, seed=2)
    assert xs.shape == (10, 1, 1, 1) and torch.equal(xs, xs2) and torch.equal(ys, ys2)
    assert not torch.equal(xs, xs3)
    assert torch.equal(xs.reshape(-1).long(), ys)  # x and y stay paired
    assert len(set(ys.tolist())) == 10


def test_subset_none_or_large_returns_all():
    x, y = torch.randn(7, 1, 2, 2), torch.arange(7)
    for n in (None, 7, 100):
        xs, ys = subset(x, y, n, seed=0)
        assert torch.equal(xs, x) and torch.equal(ys, y)


# ------------------------------------------------------------------------------------ augment


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augment_batch_shape_and_deterministic():
    x = torch.randn(16, 3, 10, 12)
    spec = AugmentSpec(crop_padding=2, horizontal_flip=True)
    a = augment_batch(x, spec, _gen(5))
    b = augment_batch(x, spec, _gen(5))
    c = augment_batch(x, spec, _gen(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_batch_identity_spec_returns_copy_of_input():
    x = torch.randn(4, 1, 8, 8)
    out = augment_batch(x, AugmentSpec(crop_padding=0, horizontal_flip=False), _gen(0))
    assert torch.equal(out, x)
    out.add_(1.0)
    assert not torch.equal(out, x)  # a new tensor, not the input


def test_augment_batch_flip_only_gives_image_or_mirror_and_both_occur():
    x = torch.randn(64, 2, 6, 7)
    out = augment_batch(x, AugmentSpec(crop_padding=0, horizontal_flip=True), _gen(1))
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)


def test_augment_batch_crop_output_is_some_crop_of_padded_input():
    p = 2
    x = torch.randn(32, 3, 9, 9)
    out = augment_batch(x, AugmentSpec(crop_padding=p, horizontal_flip=False), _gen(2))
    padded = F.pad(x, (p, p, p, p))
    offsets_seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(out[i], padded[i, :, dy:dy + 9, dx:dx + 9])
        ]
        assert len(matches) == 1, f"sample {i} is not exactly one crop of its padded input"
        offsets_seen.add(matches[0])
    # Content actually shifts, both vertically and horizontally.
    assert len({dy for dy, _ in offsets_seen}) > 1 and len({dx for _, dx in offsets_seen}) > 1


def test_augment_batch_crop_and_flip_is_crop_of_image_or_mirror():
    p = 1
    x = torch.randn(32, 1, 5, 5)
    out = augment_batch(x, AugmentSpec(crop_padding=p, horizontal_flip=True), _gen(3))
    padded = F.pad(x, (p, p, p, p))
    flipped_seen = False
    for i in range(len(x)):
        crops = [padded[i, :, dy:dy + 5, dx:dx + 5] for dy in range(3) for dx in range(3)]
        plain = any(torch.equal(out[i], c) for c in crops)
        mirror = any(torch.equal(out[i], c.flip(-1)) for c in crops)
        assert plain or mirror
        flipped_seen |= mirror and not plain
    assert flipped_seen


def test_augment_spec_negative_padding_is_usererror():
    with pytest.raises(UserError, match="crop_padding"):
        AugmentSpec(crop_padding=-1)
