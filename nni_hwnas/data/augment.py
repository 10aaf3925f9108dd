"""Batch-level data augmentation on in-memory tensors.

Trials train on small CPU machines from tensors held in memory (no DataLoader, no PIL), so the
augmentation works on a whole batch at once: one gather per batch instead of a Python loop over
samples, and every random draw comes from an explicit :class:`torch.Generator` so a trial can be
replayed exactly from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nni_hwnas.errors import UserError


@dataclass(frozen=True)
class AugmentSpec:
    """What :func:`augment_batch` does: pad-and-random-crop and/or random horizontal flip.

    ``crop_padding`` is the zero padding on each side before cropping back to the original size
    (0 disables the crop); ``horizontal_flip`` mirrors each sample left-right with p=0.5 (off for
    data where mirroring changes the meaning, such as digits).
    """

    crop_padding: int = 0
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        if int(self.crop_padding) != self.crop_padding or self.crop_padding < 0:
            raise UserError(
                f"augment crop_padding must be a non-negative integer, got {self.crop_padding!r}; "
                "use 0 to disable the random crop"
            )

    def describe(self) -> str:
        parts = ([f"random crop with padding {self.crop_padding}"] if self.crop_padding else []) + (
            ["horizontal flip"] if self.horizontal_flip else [])
        return " + ".join(parts) or "none"

    @property
    def is_identity(self) -> bool:
        """True when the spec changes nothing (training can skip the call)."""
        return self.crop_padding == 0 and not self.horizontal_flip


def augment_batch(x: Tensor, spec: AugmentSpec, generator: torch.Generator) -> Tensor:
    """Return a randomly cropped and/or flipped copy of the batch ``x`` (N, C, H, W).

    Crop and flip are folded into one advanced-indexing gather: each sample gets its own row
    offsets and column offsets (reversed for the samples that are flipped) into the zero-padded
    batch. Random numbers are drawn on the generator's device, crop offsets first and then flip
    decisions, so the result depends only on the generator state and the batch size.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if spec.is_identity or x.shape[0] == 0:
        return x.clone()

    n, c, h, w = x.shape
    p = int(spec.crop_padding)
    gdev = generator.device
    rows = torch.arange(h, device=gdev).expand(n, h)
    cols = torch.arange(w, device=gdev).expand(n, w)
    if p > 0:
        # Offsets in [0, 2p]: offset p is the un-shifted image.
        oy = torch.randint(0, 2 * p + 1, (n, 1), generator=generator, device=gdev)
        ox = torch.randint(0, 2 * p + 1, (n, 1), generator=generator, device=gdev)
        rows = rows + oy
        cols = cols + ox
        src = F.pad(x, (p, p, p, p))
    else:
        src = x
    if spec.horizontal_flip:
        flip = torch.rand(n, generator=generator, device=gdev) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)

    rows = rows.to(x.device)
    cols = cols.to(x.device)
    batch_idx = torch.arange(n, device=x.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
    return src[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]
