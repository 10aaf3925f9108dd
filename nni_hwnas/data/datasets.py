"""Datasets as in-memory tensors: the public loader and the digits, MedMNIST and CIFAR-10 readers.

Search trials on small CPU machines train many short runs, so every dataset is loaded once into
float32 tensors (standardised with the training split's per-channel statistics) and batched by
indexing, with no DataLoader and no per-sample Python work. MedMNIST files are read through the
``medmnist`` package itself so users can point ``data_root`` at the same folder they use there.
Everything a user can fix (a missing file, a bad fraction) is raised as a one-line
:class:`~nni_hwnas.errors.UserError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from nni_hwnas.data.augment import AugmentSpec
from nni_hwnas.errors import UserError

__all__ = [
    "AugmentSpec",
    "DatasetSplits",
    "DATA_ENV_VAR",
    "dataset_names",
    "default_augment",
    "load_dataset",
    "resolve_data_root",
    "subset",
]

#: Environment variable naming the default data folder (else ``./data``).
DATA_ENV_VAR = "NNI_HWNAS_DATA"

_DIGITS_AUGMENT = AugmentSpec(crop_padding=1, horizontal_flip=False)  # mirrored digits change meaning
_MEDMNIST_AUGMENT = AugmentSpec(crop_padding=2, horizontal_flip=True)
_CIFAR_AUGMENT = AugmentSpec(crop_padding=4, horizontal_flip=True)
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_SIZE = 50000


@dataclass
class DatasetSplits:
    """Train/val/test tensors plus what a model builder and the run record need to know.

    ``x`` tensors are float32 (N, C, H, W) standardised with the train split's per-channel
    mean/std; ``y`` is int64 (N,) for single-label tasks and float32 (N, L) for multi-label ones.
    ``task`` uses MedMNIST's task names ('multi-class', 'binary-class', 'ordinal-regression',
    'multi-label'); ``source`` says where the data came from.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    input_shape: tuple[int, int, int]
    task: str
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    source: str = ""
    norm_mean: tuple[float, ...] | None = None
    norm_std: tuple[float, ...] | None = None

    @property
    def is_multilabel(self) -> bool:
        """True when each sample has several independent binary labels (loss: BCE, not CE)."""
        return self.task == "multi-label"

    def describe(self) -> str:
        """One line stating what was found and what is applied, so a user can check it at a glance."""
        c, h, w = self.input_shape
        norm = "per-channel mean/std of the train split"
        if self.norm_mean is not None and self.norm_std is not None:
            fmt = lambda v: "(" + ", ".join(f"{x:.3g}" for x in v) + ")"  # noqa: E731
            norm += f" (mean {fmt(self.norm_mean)}, std {fmt(self.norm_std)})"
        return (f"dataset {self.name}: {c} channel(s), {h}x{w}, {self.num_classes} classes, "
                f"train/val/test {len(self.train_y)}/{len(self.val_y)}/{len(self.test_y)}; "
                f"normalised by {norm}; augment: {self.augment.describe()}")


def _medmnist_info() -> dict:
    import medmnist

    return medmnist.INFO


def _medmnist_2d_flags() -> list[str]:
    """MedMNIST's 2-D subset flags (3-D ones end in '3d' and need another model family)."""
    return [flag for flag in _medmnist_info() if not flag.endswith("3d")]


def dataset_names() -> list[str]:
    """All dataset names :func:`load_dataset` accepts: the registry's built-ins and plug-ins."""
    from nni_hwnas.data.registry import dataset_entries

    return list(dataset_entries())


def default_augment(name: str) -> AugmentSpec:
    """The augmentation a dataset gets when none is given (no flip for digits)."""
    from nni_hwnas.data.registry import get_entry

    return get_entry(name).augment


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """The absolute data folder: ``data_root``, else $NNI_HWNAS_DATA, else ``./data``."""
    if data_root is None or str(data_root) == "":
        data_root = os.environ.get(DATA_ENV_VAR) or "./data"
    return Path(data_root).expanduser().resolve()


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line: its first non-empty line, capped in length.

    Library messages are often multi-line (medmnist's download failure is a numbered list).
    """
    lines = [" ".join(line.split()) for line in str(exc).splitlines()]
    msg = next((line for line in lines if line), "")
    if len(msg) > 200:
        msg = msg[:197] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _standardise(train_x: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """Standardise all splits in place with the train split's per-channel mean/std.

    Only train statistics are used so validation/test numbers are not leaked into training.
    In-place arithmetic avoids a second copy of large sets (CIFAR-10 train is ~600 MB as float32).
    """
    if train_x.shape[0] == 0:
        raise UserError("the training split is empty; use a data file with training samples")
    var, mean = torch.var_mean(train_x, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-8)
    out = []
    for t in (train_x, *others):
        out.append(t.sub_(mean).div_(std))
    return tuple(out)


def _images_to_tensor(imgs: np.ndarray) -> Tensor:
    """uint8 (N, H, W) or (N, H, W, C) images -> float32 (N, C, H, W)."""
    arr = np.asarray(imgs)
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4:
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"images have shape {arr.shape}, expected (N, H, W) or (N, H, W, C)")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)


def _check_fraction(label: str, value: float) -> None:
    if not 0.0 < float(value) < 1.0:
        raise UserError(f"{label} must be between 0 and 1 (exclusive), got {value!r}; e.g. use 0.2")


# --------------------------------------------------------------------------------------------
# digits


def _load_digits(seed: int, val_fraction: float, test_fraction: float, augment: AugmentSpec) -> DatasetSplits:
    """scikit-learn's bundled 8x8 digits: real images that need no download, split by ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}; "
            "lower one of them so samples are left for training"
        )
    bunch = load_digits()
    x = bunch.data.astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    idx = np.arange(len(y))
    # Stratified twice: carve the test split off, then val from the rest (fraction of the total).
    rest, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    train_idx, val_idx = train_test_split(
        rest, test_size=val_fraction / (1.0 - test_fraction), random_state=seed, stratify=y[rest]
    )
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    train_x, val_x, test_x = _standardise(xt[train_idx].clone(), xt[val_idx].clone(), xt[test_idx].clone())
    return DatasetSplits(
        name="digits",
        train_x=train_x,
        train_y=yt[train_idx].clone(),
        val_x=val_x,
        val_y=yt[val_idx].clone(),
        test_x=test_x,
        test_y=yt[test_idx].clone(),
        num_classes=10,
        input_shape=(1, 8, 8),
        task="multi-class",
        augment=augment,
        source=f"sklearn.datasets.load_digits (bundled; stratified split, seed={seed})",
    )


# --------------------------------------------------------------------------------------------
# MedMNIST


def _load_medmnist(flag: str, root: Path, download: bool, augment: AugmentSpec) -> DatasetSplits:
    """A MedMNIST 2-D subset at 28x28 through the ``medmnist`` classes, official splits as they are.

    Reads ``.imgs``/``.labels`` rather than ``len(dataset)``: medmnist 3.0.2 asserts the official
    sample count in ``__len__``, which a user's own copy or subset legitimately differs from.
    """
    import medmnist

    info = medmnist.INFO[flag]
    filename = f"{flag}.npz"
    path = root / filename
    url = info.get("url", "https://medmnist.com")
    how = f"put the official {filename} there, or set `dataset.download: true` where the network allows (source: {url})"
    if not download and not path.is_file():
        raise UserError(f"MedMNIST file {filename} not found in {root}; {how}")
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create data folder {root} ({_one_line(exc)}); pass a writable data root")

    cls = getattr(medmnist, info["python_class"])
    parts = {}
    try:
        for split in ("train", "val", "test"):
            # Only download once (train), and only when the user asked: download=True re-checks the
            # MD5 and tries the network for any file that differs from the official release.
            ds = cls(split=split, root=str(root), download=download and split == "train")
            parts[split] = (np.asarray(ds.imgs), np.asarray(ds.labels))
    except Exception as exc:  # medmnist raises bare RuntimeError/AssertionError/zip errors
        if download:
            raise UserError(
                f"could not download/load MedMNIST file {filename} into {root} ({_one_line(exc)}); "
                f"put the official {filename} there yourself (source: {url}), or set `dataset.download: false` to "
                "use a copy already there as it is"
            ) from exc
        raise UserError(
            f"could not load MedMNIST file {filename} from {root} ({_one_line(exc)}); "
            f"replace it with the official {filename} (source: {url})"
        ) from exc

    multilabel = info["task"].startswith("multi-label")
    num_classes = len(info["label"])
    xs, ys = [], []
    for split in ("train", "val", "test"):
        imgs, labels = parts[split]
        try:
            xs.append(_images_to_tensor(imgs))
        except ValueError as exc:
            raise UserError(f"MedMNIST file {path}: {split}_images {exc}; use the 28x28 {filename}") from exc
        labels = np.asarray(labels)
        if labels.shape[0] != imgs.shape[0]:
            raise UserError(
                f"MedMNIST file {path}: {split} has {imgs.shape[0]} images but {labels.shape[0]} labels; "
                f"replace it with the official {filename}"
            )
        if multilabel:
            ys.append(torch.from_numpy(labels.reshape(labels.shape[0], -1).astype(np.float32)))
        else:
            if labels.ndim > 1 and int(np.prod(labels.shape[1:])) != 1:
                raise UserError(
                    f"MedMNIST file {path}: {split}_labels have shape {labels.shape}, expected (N, 1) "
                    f"for the single-label task of {flag}; replace it with the official {filename}"
                )
            ys.append(torch.from_numpy(labels.reshape(-1).astype(np.int64)))
    shapes = {tuple(t.shape[1:]) for t in xs}
    if len(shapes) != 1:
        raise UserError(f"MedMNIST file {path}: splits have different image shapes {sorted(shapes)}; "
                        f"replace it with the official {filename}")
    train_x, val_x, test_x = _standardise(*xs)
    c, h, w = train_x.shape[1:]
    return DatasetSplits(
        name=flag,
        train_x=train_x,
        train_y=ys[0],
        val_x=val_x,
        val_y=ys[1],
        test_x=test_x,
        test_y=ys[2],
        num_classes=num_classes,
        input_shape=(int(c), int(h), int(w)),
        task="multi-label" if multilabel else info["task"],
        augment=augment,
        source=f"{path} (medmnist {info['python_class']}, official splits)",
    )


# --------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_checksum_failure(folder: Path) -> Path | None:
    """The first present CIFAR-10 batch whose MD5 differs from the official one, if any."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    for filename, md5 in CIFAR10.train_list + CIFAR10.test_list:
        path = folder / filename
        if path.is_file() and not check_integrity(str(path), md5):
            return path
    return None


def _load_cifar10(root: Path, seed: int, download: bool, val_fraction: float, augment: AugmentSpec) -> DatasetSplits:
    """CIFAR-10 through torchvision; validation carved from the 50k train set by ``seed``."""
    from torchvision.datasets import CIFAR10

    _check_fraction("val_fraction", val_fraction)
    folder = root / _CIFAR_FOLDER
    how = (
        f"copy the extracted CIFAR-10 python version ({_CIFAR_FOLDER}/ from cifar-10-python.tar.gz) "
        "there, or set `dataset.download: true` in the config where the network allows (for images in class folders use name: folder)"
    )
    if not download and not folder.is_dir():
        raise UserError(f"CIFAR-10 folder {_CIFAR_FOLDER} not found in {root}; {how}")
    try:
        if download:
            root.mkdir(parents=True, exist_ok=True)
        train = CIFAR10(root=str(root), train=True, download=download)
        test = CIFAR10(root=str(root), train=False, download=False)
        train_imgs, train_lbls = np.asarray(train.data), np.asarray(train.targets, dtype=np.int64)
        test_imgs, test_lbls = np.asarray(test.data), np.asarray(test.targets, dtype=np.int64)
    except Exception as exc:  # torchvision raises RuntimeError("Dataset not found or corrupted"), URLError, ...
        bad = _cifar_checksum_failure(folder)
        if bad:
            raise UserError(
                f"CIFAR-10 file {bad} fails torchvision's MD5 check for the official python batches; for a "
                "rebuilt or re-encoded copy use dataset: {name: folder, path: DIR} with DIR/train/<class>/ images"
            ) from exc
        raise UserError(
            f"could not load CIFAR-10 folder {_CIFAR_FOLDER} in {root} ({_one_line(exc)}); {how}"
        ) from exc

    n = train_imgs.shape[0]
    n_val = int(round(val_fraction * n))
    if not 0 < n_val < n:
        raise UserError(f"val_fraction {val_fraction} leaves no train or no val samples of {n}; use e.g. 0.1")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    all_x = _images_to_tensor(train_imgs)
    all_y = torch.from_numpy(train_lbls)
    train_x, val_x, test_x = _standardise(all_x[train_idx], all_x[val_idx], _images_to_tensor(test_imgs))
    del all_x
    return DatasetSplits(
        name="cifar10",
        train_x=train_x,
        train_y=all_y[train_idx],
        val_x=val_x,
        val_y=all_y[val_idx],
        test_x=test_x,
        test_y=torch.from_numpy(test_lbls),
        num_classes=10,
        input_shape=(3, 32, 32),
        task="multi-class",
        augment=augment,
        source=f"{folder} (torchvision CIFAR10; val {n_val} of train, seed={seed}; official test)",
    )


# --------------------------------------------------------------------------------------------
# public entry points


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    augment: AugmentSpec | Mapping[str, Any] | None = None,
    machine_data_roots: Sequence[Mapping[str, Any]] | None = None,
    **options: Any,
) -> DatasetSplits:
    """Load ``name`` (a registry entry) as standardised in-memory tensors with train/val/test splits.

    ``seed``, ``val_fraction`` and ``test_fraction`` shape the split only where the dataset has
    none of its own: digits uses both fractions, CIFAR-10 carves ``val_fraction`` of its train set
    (its test set is official), MedMNIST keeps its official splits; folder and npz carve what they
    lack. ``data_root`` defaults to $NNI_HWNAS_DATA, else ``./data``; ``download`` is passed on only
    when the user asked for it. ``augment`` (a spec, or ``{flip, crop_padding}`` with None meaning
    the dataset's default) overrides the dataset's default augmentation; ``options`` are the extra
    ``dataset`` keys (``path``, ``keys``, ``image_size``, ``cache``) an entry may read.
    ``machine_data_roots`` (trial arguments of a remote search) replaces ``data_root`` with the
    root of the remote machine this trial runs on (:mod:`nni_hwnas.data.machine_roots`).
    """
    from nni_hwnas.data.machine_roots import data_root_here
    from nni_hwnas.data.registry import DatasetRequest, check_options, get_entry

    data_root = data_root_here(data_root, machine_data_roots)

    entry = get_entry(str(name).strip().lower())
    check_options(entry, options)
    request = DatasetRequest(name=entry.name, root=resolve_data_root(data_root), seed=int(seed), download=download,
                             val_fraction=val_fraction, test_fraction=test_fraction,
                             augment=_augment_spec(augment, entry.augment), options=options)
    data = entry.load(request)
    if not isinstance(data, DatasetSplits):
        raise UserError(f"dataset {entry.name!r} loader returned {type(data).__name__}, not DatasetSplits; "
                        "fix the plug-in that provides it")
    return data


def _augment_spec(augment: AugmentSpec | Mapping[str, Any] | None, default: AugmentSpec) -> AugmentSpec:
    """An explicit spec, or the dataset default with the given ``flip``/``crop_padding`` replaced."""
    if augment is None or isinstance(augment, AugmentSpec):
        return augment or default
    flip, pad = augment.get("flip"), augment.get("crop_padding")
    return AugmentSpec(crop_padding=default.crop_padding if pad is None else pad,
                       horizontal_flip=default.horizontal_flip if flip is None else bool(flip))


def subset(x: Tensor, y: Tensor, n: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """A deterministic random subset of ``n`` samples (all when ``n`` is None or >= len).

    Used by the training-subset option so cheap trials see the same samples for the same seed;
    the chosen samples keep their original order.
    """
    total = int(x.shape[0])
    if y.shape[0] != total:
        raise ValueError(f"x has {total} samples but y has {y.shape[0]}")
    if n is None or n >= total:
        return x, y
    if n < 1:
        raise UserError(f"training subset size must be at least 1, got {n}; omit it to use all samples")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(total, generator=g)[: int(n)].sort().values
    return x[idx], y[idx]
