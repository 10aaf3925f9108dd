"""``name: npz``: image arrays in a NumPy ``.npz`` file, medmnist-style keys or a stated key map.

Default keys are medmnist's (``train_images``, ``train_labels``, ``val_*``, ``test_*``); a file
saved by other tools names its arrays with ``dataset.keys`` (e.g. ``{train_images: x_train}``).
Only the train arrays are required; missing val/test splits are carved by the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from nni_hwnas.data.assemble import assemble_splits
from nni_hwnas.data.registry import DatasetRequest
from nni_hwnas.errors import UserError, closest

__all__ = ["NPZ_KEYS", "load_npz"]

#: The roles an array can play, named as medmnist names its arrays.
NPZ_KEYS = tuple(f"{split}_{kind}" for split in ("train", "val", "test") for kind in ("images", "labels"))


def _key_map(keys: Mapping[str, str] | None) -> dict[str, str]:
    keys = dict(keys or {})
    for role, name in keys.items():
        if role not in NPZ_KEYS:
            raise UserError(f"dataset.keys has unknown role {role!r}{closest(role, NPZ_KEYS)}; "
                            f"allowed: {', '.join(NPZ_KEYS)}")
        if not isinstance(name, str):
            raise UserError(f"dataset.keys.{role} must be the name of an array in the file, got {name!r}")
    return {role: keys.get(role, role) for role in NPZ_KEYS}


def _images(arr: np.ndarray, where: str) -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1/3 -> (N, C, H, W) tensor (dtype kept)."""
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    elif not (arr.ndim == 4 and arr.shape[1] in (1, 3)):
        raise UserError(f"{where} has shape {arr.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) "
                        "with 1 or 3 channels")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise UserError(f"{where} has dtype {arr.dtype}; save images as uint8 or float arrays")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _labels(arr: np.ndarray, n: int, where: str) -> torch.Tensor:
    if arr.ndim > 1 and int(np.prod(arr.shape[1:])) != 1:
        raise UserError(f"{where} has shape {arr.shape}; npz files hold one class index per image, (N,) or "
                        "(N, 1) (multi-label MedMNIST files load by their own name, e.g. chestmnist)")
    flat = arr.reshape(-1)
    if flat.shape[0] != n:
        raise UserError(f"{where} has {flat.shape[0]} labels for {n} images; save one label per image")
    if not np.issubdtype(flat.dtype, np.integer) or (len(flat) and flat.min() < 0):
        raise UserError(f"{where} must be non-negative integer class indices, got dtype {flat.dtype}")
    return torch.from_numpy(flat.astype(np.int64))


def load_npz(request: DatasetRequest) -> object:
    """The ``npz`` dataset entry: ``dataset.path`` names the file, ``dataset.keys`` its arrays."""
    path = request.option("path")
    if not path:
        raise UserError("dataset `npz` needs dataset.path: the .npz file with train_images and train_labels")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"npz file {path} not found; set dataset.path to an existing .npz file")
    keys = _key_map(request.option("keys"))
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {name: npz[name] for name in set(keys.values()) if name in npz.files}
            names = list(npz.files)
    except Exception as exc:  # zipfile.BadZipFile, ValueError for pickled arrays, OSError
        raise UserError(f"cannot read npz file {path} ({type(exc).__name__}: {exc}); save it with numpy.savez") from exc
    for role in ("train_images", "train_labels"):
        if keys[role] not in stored:
            raise UserError(f"npz file {path} has no array {keys[role]!r} (it has: {', '.join(names)}); "
                            f"name yours with dataset.keys, e.g. keys: {{{role}: {names[0] if names else 'x'}}}")
    parts = {}
    for split in ("train", "val", "test"):
        img_key, lbl_key = keys[f"{split}_images"], keys[f"{split}_labels"]
        if (img_key in stored) != (lbl_key in stored):
            missing = lbl_key if img_key in stored else img_key
            raise UserError(f"npz file {path} has {split} images or labels but not {missing!r}; save both or neither")
        if img_key in stored:
            x = _images(stored[img_key], f"npz array {img_key!r} in {path}")
            parts[split] = (x, _labels(stored[lbl_key], len(x), f"npz array {lbl_key!r} in {path}"))
    shapes = {tuple(x.shape[1:]) for x, _ in parts.values()}
    if len(shapes) != 1:
        raise UserError(f"npz file {path}: splits have different image shapes {sorted(shapes)}; save one shape")
    num_classes = int(max(int(y.max()) for _, y in parts.values() if len(y))) + 1
    return assemble_splits(
        "npz", parts, num_classes=num_classes, seed=request.seed, val_fraction=request.val_fraction,
        test_fraction=request.test_fraction, augment=request.augment,
        source=f"{path} (npz arrays {', '.join(sorted({keys[f'{s}_images'] for s in parts}))})")
