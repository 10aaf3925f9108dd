"""The built-in registry entries: digits, CIFAR-10, MNIST-style idx files, MedMNIST, folder, npz.

Each entry says which extra ``dataset`` options it reads and what augmentation it gets by default
(no flips for digits: a mirrored digit changes meaning).
"""

from __future__ import annotations

from nni_hwnas.data import datasets as ds
from nni_hwnas.data.assemble import assemble_splits
from nni_hwnas.data.augment import AugmentSpec
from nni_hwnas.data.registry import DatasetEntry, DatasetRequest
from nni_hwnas.errors import UserError

__all__ = ["entries", "load_idx"]

_IDX = {"mnist": ("MNIST", AugmentSpec(crop_padding=2)),
        "fashion_mnist": ("FashionMNIST", AugmentSpec(crop_padding=2, horizontal_flip=True))}


def load_idx(request: DatasetRequest) -> object:
    """MNIST or Fashion-MNIST from their standard idx files through torchvision; val carved from train.

    torchvision looks for ``<data_root>/<MNIST|FashionMNIST>/raw/train-images-idx3-ubyte`` and the
    three other files (gunzipped), as it leaves them after its own download.
    """
    import torchvision.datasets as tvd

    folder, _ = _IDX[request.name]
    cls = getattr(tvd, folder)
    raw = request.root / folder / "raw"
    files = ", ".join(f"{k}-{t}-idx{d}-ubyte" for k in ("train", "t10k") for t, d in (("images", 3), ("labels", 1)))
    try:
        if request.download:
            request.root.mkdir(parents=True, exist_ok=True)
        train = cls(root=str(request.root), train=True, download=request.download)
        test = cls(root=str(request.root), train=False, download=False)
    except Exception as exc:  # RuntimeError("Dataset not found..."), URLError, a truncated idx file
        raise UserError(f"could not load {request.name} idx files from {raw} ({ds._one_line(exc)}); put "
                        f"{files} there (gunzipped), or set dataset.download: true where the network allows") from exc
    parts = {"train": (train.data[:, None].clone(), train.targets.clone()),
             "test": (test.data[:, None].clone(), test.targets.clone())}
    return assemble_splits(request.name, parts, num_classes=len(train.classes), seed=request.seed,
                           val_fraction=request.val_fraction, test_fraction=request.test_fraction,
                           augment=request.augment, source=f"{raw} (torchvision {folder} idx files; official test)")


def _digits(r: DatasetRequest) -> object:
    return ds._load_digits(r.seed, r.val_fraction, r.test_fraction, r.augment)


def _cifar10(r: DatasetRequest) -> object:
    return ds._load_cifar10(r.root, r.seed, r.download, r.val_fraction, r.augment)


def _medmnist(r: DatasetRequest) -> object:
    return ds._load_medmnist(r.name, r.root, r.download, r.augment)


def entries() -> list[DatasetEntry]:
    """The built-in datasets (MedMNIST's 2-D flags come from the installed medmnist package)."""
    from nni_hwnas.data.folder import load_folder
    from nni_hwnas.data.npz import load_npz

    out = [
        DatasetEntry("digits", _digits, ds._DIGITS_AUGMENT, description="scikit-learn 8x8 digits (bundled)"),
        DatasetEntry("cifar10", _cifar10, ds._CIFAR_AUGMENT, description="official CIFAR-10 python batches"),
        DatasetEntry("folder", load_folder, ds._CIFAR_AUGMENT, ("path", "image_size", "cache"),
                     "an image folder: train/<class>/*, optional val/ and test/"),
        DatasetEntry("npz", load_npz, AugmentSpec(crop_padding=2), ("path", "keys"),
                     "arrays in an .npz file (medmnist keys or dataset.keys)"),
    ]
    out += [DatasetEntry(name, load_idx, aug, description=f"torchvision {folder} idx files")
            for name, (folder, aug) in _IDX.items()]
    out += [DatasetEntry(flag, _medmnist, ds._MEDMNIST_AUGMENT, description="MedMNIST 2-D subset (official splits)")
            for flag in ds._medmnist_2d_flags()]
    return out

