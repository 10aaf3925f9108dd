"""Raw image arrays per split -> standardised :class:`DatasetSplits`, carving missing splits by seed.

The folder, npz and idx loaders all end the same way: some splits come with the data, the rest are
carved from the training split, stratified per class with the run's seed so a search and its
retrain see the same samples; then every split is standardised with the train statistics.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from nni_hwnas.data.augment import AugmentSpec
from nni_hwnas.data.datasets import DatasetSplits
from nni_hwnas.errors import UserError

__all__ = ["assemble_splits", "stratified_split"]


def stratified_split(labels: Tensor, fraction: float, seed: int, what: str) -> tuple[Tensor, Tensor]:
    """Indices (kept, taken): ``fraction`` of each class taken, drawn with ``seed``, both sorted.

    Per-class rounding keeps class ratios; a class with one sample stays in ``kept``. Raises a
    :class:`UserError` when nothing would be taken or nothing kept.
    """
    g = torch.Generator().manual_seed(int(seed))
    kept, taken = [], []
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(int(round(float(fraction) * len(idx))), len(idx) - 1)
        taken.append(idx[:k])
        kept.append(idx[k:])
    kept_t, taken_t = torch.cat(kept).sort().values, torch.cat(taken).sort().values
    if len(taken_t) == 0:
        raise UserError(f"{what} of {float(fraction):g} takes no samples from a training split of {len(labels)}; "
                        f"raise {what} or add samples")
    return kept_t, taken_t


def _standardise_with_stats(train_x: Tensor, *others: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
    var, mean = torch.var_mean(train_x, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-8)
    return [t.sub_(mean).div_(std) for t in (train_x, *others)], mean.flatten(), std.flatten()


def assemble_splits(name: str, parts: Mapping[str, tuple[Tensor, Tensor]], *, num_classes: int, seed: int,
                    val_fraction: float, test_fraction: float, augment: AugmentSpec, source: str) -> DatasetSplits:
    """Build standardised splits from ``parts`` (split -> (images NCHW, int64 labels)).

    ``train`` is required; a missing ``test`` takes ``test_fraction`` of train, then a missing
    ``val`` takes ``val_fraction`` of what is left. Images may be uint8 or float; they become float32.
    """
    train_x, train_y = parts["train"]
    if len(train_y) == 0:
        raise UserError(f"dataset {name}: the training split is empty; add training samples")
    carved = []
    splits = dict(parts)
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split not in splits:
            keep, take = stratified_split(train_y, fraction, seed, f"{split}_fraction")
            splits[split] = (train_x[take], train_y[take])
            train_x, train_y = train_x[keep], train_y[keep]
            carved.append(f"{split} {len(take)} ({fraction:g} of train, stratified, seed={seed})")
    xs, mean, std = _standardise_with_stats(
        train_x.to(torch.float32), splits["val"][0].to(torch.float32), splits["test"][0].to(torch.float32))
    c, h, w = xs[0].shape[1:]
    how = "; carved " + ", ".join(carved) if carved else "; splits as given"
    return DatasetSplits(
        name=name, train_x=xs[0], train_y=train_y, val_x=xs[1], val_y=splits["val"][1],
        test_x=xs[2], test_y=splits["test"][1], num_classes=int(num_classes),
        input_shape=(int(c), int(h), int(w)), task="multi-class", augment=augment, source=source + how,
        norm_mean=tuple(float(v) for v in mean), norm_std=tuple(float(v) for v in std))
