"""Crop and horizontal flip of clips, with one set of parameters for every frame and every image of a sample.

Images are arrays whose axes 1 and 2 are (H, W) (clips (T, H, W, ...)); the reference applies its
augmentations with the same random draw to every key and every time step (SPEC 7.4), and so do we.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class CropFlip:
    """A (height, width) window at (top, left), then an optional left-right flip of that window."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False


def center_offset(size: int, crop: int) -> int:
    """Offset of a centred crop, round((size - crop) / 2) as the reference's CenterCrop (halves to even)."""
    return int(round((size - crop) / 2))


def sample_crop_flip(
    size: tuple[int, int],
    crop: tuple[int, int] | None,
    random_crop: bool,
    hflip: bool,
    rng: np.random.Generator | None,
) -> CropFlip:
    """Draw the parameters for one sample of full size `size`: crop None keeps the full image.

    The offsets are uniform over every valid position (inclusive bounds) when random_crop, else centred; the
    flip has probability 0.5 when hflip. rng may be None only when nothing is random.
    """
    height, width = size
    crop_h, crop_w = crop if crop is not None else size
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {crop_h}x{crop_w} is larger than the {height}x{width} images")
    if (random_crop or hflip) and rng is None:
        raise ValueError("random_crop and hflip need an rng")
    if random_crop:
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    else:
        top, left = center_offset(height, crop_h), center_offset(width, crop_w)
    flip = bool(rng.random() < 0.5) if hflip else False
    return CropFlip(top, left, crop_h, crop_w, flip)


def apply_crop_flip(images: Mapping[str, np.ndarray], params: CropFlip) -> dict[str, np.ndarray]:
    """Crop (and flip) axes 1 and 2 of every array, returning C-contiguous copies."""
    rows = slice(params.top, params.top + params.height)
    cols = slice(params.left, params.left + params.width)
    out = {}
    for key, array in images.items():
        if array.shape[1] < rows.stop or array.shape[2] < cols.stop:
            raise ValueError(f"{key!r} of shape {array.shape} is too small for {params}")
        window = array[:, rows, cols]
        out[key] = np.ascontiguousarray(window[:, :, ::-1] if params.flip else window)
    return out
