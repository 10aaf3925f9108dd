"""``name: folder``: an ImageFolder-style tree, decoded once into a cached tensor file.

Layout: ``DIR/train/<class>/*`` with optional ``DIR/val/<class>/*`` and ``DIR/test/<class>/*``
(missing splits are carved from train by the seed, see :mod:`nni_hwnas.data.assemble`). Classes
and file order follow torchvision's ``ImageFolder`` (sorted class folders, its image extensions).
Decoding tens of thousands of JPEGs takes a CPU minute, and every trial process loads the data,
so the decoded uint8 tensors are saved once under the cache folder, keyed by the file listing
(names, sizes, mtimes) and the decoding options; any change to the folder decodes it again.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nni_hwnas.data.assemble import assemble_splits
from nni_hwnas.data.registry import DatasetRequest
from nni_hwnas.errors import UserError

__all__ = ["CACHE_ENV_VAR", "cache_dir", "decode_folder", "load_folder"]

#: Environment variable naming the folder for decoded-dataset caches (else ~/.cache/nni_hwnas/datasets).
CACHE_ENV_VAR = "NNI_HWNAS_CACHE"
_PROGRESS_FROM = 1000  # images; smaller folders decode in well under a second
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
#: torchvision ImageFolder's extensions (copied so that listing does not import torchvision).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def cache_dir() -> Path:
    """Where decoded folders are cached: $NNI_HWNAS_CACHE, else ~/.cache/nni_hwnas/datasets."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nni_hwnas" / "datasets"


def _image_size(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return int(value[0]), int(value[1])
    raise UserError(f"dataset.image_size must be [height, width] in pixels, got {value!r}; e.g. image_size: [32, 32]")


def _list_split(split_dir: Path, classes: Sequence[str] | None) -> tuple[list[str], list[tuple[str, int, str]]]:
    """Class names and (file, class index, stat signature) of one split, in ImageFolder's order.

    Plain strings and ``os.scandir`` keep listing 60,000 files well under a second (``pathlib``
    objects cost seconds at that count, paid by every trial process).
    """
    names = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise UserError(f"image folder {split_dir} has no class folders; put images in {split_dir}/<class>/")
    if classes is not None:
        extra = sorted(set(names) - set(classes))
        if extra:
            raise UserError(f"image folder {split_dir} has class folder(s) {', '.join(extra)} that train/ lacks; "
                            "use the same class folder names in every split")
    index = {c: i for i, c in enumerate(classes if classes is not None else names)}
    files: list[tuple[str, int, str]] = []
    for name in names:
        class_dir = os.path.join(split_dir, name)
        found = []
        for e in os.scandir(class_dir):
            if e.name.lower().endswith(IMG_EXTENSIONS) and e.is_file():
                st = e.stat()
                found.append((e.path, index[name], f"{st.st_size}|{st.st_mtime_ns}"))
        if not found:
            raise UserError(f"class folder {class_dir} has no image files ({', '.join(IMG_EXTENSIONS)}); "
                            "add images or remove the folder")
        files.extend(sorted(found))
    return names, files


def _cache_key(root: Path, listing: dict[str, list[tuple[str, int, str]]], size: tuple[int, int] | None) -> str:
    h = hashlib.sha256(f"v1|{root.resolve()}|{size}".encode())
    prefix = len(str(root))
    for split, files in listing.items():
        h.update("".join(f"{split}|{path[prefix:]}|{label}|{sig}\n" for path, label, sig in files).encode())
    return h.hexdigest()[:20]


def _decode(path: str, size: tuple[int, int] | None, reference: list) -> np.ndarray:
    """One image as a uint8 (H, W) or (H, W, 3) array; sizes must match the first unless resizing."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            gray = img.mode in _GRAY_MODES
            img = img.convert("L" if gray else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise UserError(f"cannot read image {path} ({type(exc).__name__}: {exc}); replace or remove that file") from exc
    if not reference:
        reference.extend([path, arr.shape[:2]])
    elif arr.shape[:2] != reference[1]:
        (h0, w0), (h, w) = reference[1], arr.shape[:2]
        raise UserError(f"image {path} is {w}x{h} pixels but {reference[0]} is {w0}x{h0}; set "
                        f"dataset.image_size: [{h0}, {w0}] to resize every image, or make them one size")
    return arr


def decode_folder(root: Path, image_size: tuple[int, int] | None = None, cache: bool = True,
                  progress: bool = True) -> tuple[list[str], dict[str, tuple[torch.Tensor, torch.Tensor]], str]:
    """Decode ``root``'s splits to uint8 NCHW tensors; returns (classes, split -> (x, y), cache note)."""
    if not root.is_dir():
        raise UserError(f"image folder {root} not found; set dataset.path to a folder holding train/<class>/ images")
    if not (root / "train").is_dir():
        raise UserError(f"image folder {root} has no train/ folder; lay it out as train/<class>/*.jpg "
                        "(val/ and test/ are optional)")
    classes, train_files = _list_split(root / "train", None)
    listing = {"train": train_files}
    for split in ("val", "test"):
        if (root / split).is_dir():
            listing[split] = _list_split(root / split, classes)[1]
    key = _cache_key(root, listing, image_size)
    cache_file = cache_dir() / f"folder-{root.name or 'root'}-{key}.pt"
    if cache and cache_file.is_file():
        try:
            saved = torch.load(cache_file, weights_only=True)
            return list(saved["classes"]), {s: (v[0], v[1]) for s, v in saved["splits"].items()}, f"cache {cache_file}"
        except Exception as exc:  # a truncated or foreign file: decode again and overwrite it
            print(f"nni-hwnas: ignoring unreadable cache {cache_file} ({type(exc).__name__}); decoding again",
                  file=sys.stderr)

    from tqdm import tqdm

    total = sum(len(f) for f in listing.values())
    reference: list = []
    arrays: dict[str, list[np.ndarray]] = {}
    started = time.perf_counter()
    # The bar clears itself (leave=False) so an error stays one line; tiny folders need no bar.
    with tqdm(total=total, desc=f"decoding {root.name} (once, then cached)", unit="img", file=sys.stderr,
              disable=not progress or total < _PROGRESS_FROM, mininterval=2.0, leave=False) as bar:
        for split, files in listing.items():
            arrays[split] = []
            for path, _, _ in files:
                arrays[split].append(_decode(path, image_size, reference))
                bar.update(1)
    color = any(a.ndim == 3 for split in arrays.values() for a in split)
    splits = {}
    for split, arrs in arrays.items():
        if color:  # a few grayscale images in a colour set become 3 equal channels
            arrs = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrs]
        x = np.stack(arrs)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        y = torch.tensor([label for _, label, _ in listing[split]], dtype=torch.int64)
        splits[split] = (torch.from_numpy(np.ascontiguousarray(x)), y)
    note = "decoded, not cached"
    if cache:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
            torch.save({"classes": classes, "splits": {s: [x, y] for s, (x, y) in splits.items()}}, tmp)
            os.replace(tmp, cache_file)  # atomic: concurrent trials never read half a file
            note = f"decoded, cached in {cache_file}"
            if progress and total >= _PROGRESS_FROM:
                print(f"nni-hwnas: decoded {total} images in {time.perf_counter() - started:.0f} s; "
                      f"cached in {cache_file}", file=sys.stderr)
        except OSError as exc:
            print(f"nni-hwnas: could not write the dataset cache {cache_file} ({exc}); set {CACHE_ENV_VAR} "
                  "to a writable folder to decode only once", file=sys.stderr)
    return classes, splits, note


def load_folder(request: DatasetRequest) -> object:
    """The ``folder`` dataset entry: ``dataset.path`` names the folder."""
    path = request.option("path")
    if not path:
        raise UserError("dataset `folder` needs dataset.path: the folder holding train/<class>/ images")
    root = Path(path).expanduser()
    classes, parts, note = decode_folder(root, _image_size(request.option("image_size")),
                                         cache=bool(request.option("cache", True)))
    return assemble_splits(
        "folder", parts, num_classes=len(classes), seed=request.seed, val_fraction=request.val_fraction,
        test_fraction=request.test_fraction, augment=request.augment,
        source=f"{root} (image folder, {len(classes)} classes: {', '.join(classes[:12])}"
               f"{', ...' if len(classes) > 12 else ''}; {note})")
