"""Prediction that looks at the shoe: for a large photo in which the shoe is a small part, InceptionV3 looks
a second time at the region its own class activation map points at, and the two answers are averaged.

The photo is first seen whole, fitted into the model's square: a 1280x1600 studio shot or a 12 MP phone
photo shrinks to 299 px, and a shoe that fills a third of it keeps about 100 px. The class activation
map (CAM) of the predicted class over the last blocks says where the evidence is: the head is linear over
the average-pooled ``mixed8`` and ``mixed10`` maps, so the class score at each place of those 8x8 maps is
exact (Zhou et al., 2016). The box around every place where the map is above :data:`THRESHOLD` of its
range, with a margin, is cut from the photo at full resolution and seen again; the probabilities of the
whole photo and of the crop are averaged. Small photos (the longer side below :data:`LARGE_SIDE_FACTOR`
times the input) and boxes that cover most of the photo are seen once, so a 240 px web photo is
predicted exactly as before.

The crop's ``mixed8`` activations are cached like the photo's, keyed by the photo and the box (rounded to
a 1/32 grid), so a refresh that finds the same box never runs the lower network again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

LARGE_SIDE_FACTOR = 2.0  # a photo is large when its longer side is at least this times the input size
THRESHOLD = 0.35  # share of the map's peak that counts as the shoe's region
MARGIN = 0.12  # added on each side, as a share of the box
MAX_BOX_AREA = 0.6  # a box covering more of the photo than this adds nothing: the photo is seen once
GRID = 32  # boxes are rounded to 1/GRID of the photo (a stable cache key)
CROP_WEIGHT = 0.5  # the crop's share of the averaged probabilities


@dataclass(frozen=True)
class Box:
    """A region of the upright photo, as fractions of its width and height."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def area(self) -> float:
        return (self.right - self.left) * (self.bottom - self.top)

    def key(self) -> str:
        return "-".join(str(round(v * GRID)) for v in (self.left, self.top, self.right, self.bottom))


def is_large(width: int, height: int, input_size: int) -> bool:
    return max(width, height) >= LARGE_SIDE_FACTOR * input_size


def class_activation_map(maps: list[np.ndarray], kernels: list[np.ndarray], class_index: int) -> np.ndarray:
    """The class score at each place: for each pooled block, its ``(h, w, c)`` map times the head's kernel
    rows for it (``(c, classes)``), summed over the blocks (all of one ``h x w`` size)."""
    return sum(
        np.tensordot(m.astype(np.float32), k[:, class_index], axes=([2], [0]))
        for m, k in zip(maps, kernels, strict=True)
    )


def _upsample(cam: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(cam.astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def shoe_box(cam: np.ndarray, width: int, height: int) -> Box | None:
    """The photo's region (width x height, upright) that ``cam`` (over the fitted, padded square) points
    at, with a margin; None when it covers most of the photo or the map is flat."""
    fine = _upsample(cam, 4 * GRID)
    low, peak = float(fine.min()), float(fine.max())
    if not math.isfinite(peak) or peak - low <= 1e-6:
        return None
    rows, cols = np.nonzero(fine >= low + THRESHOLD * (peak - low))
    n = fine.shape[0]
    x0, x1, y0, y1 = cols.min() / n, (cols.max() + 1) / n, rows.min() / n, (rows.max() + 1) / n
    # the square holds the photo fitted and centred: map the box back to fractions of the photo
    scale = 1.0 / max(width, height)
    content_w, content_h = width * scale, height * scale
    off_x, off_y = (1.0 - content_w) / 2, (1.0 - content_h) / 2
    left, right = (x0 - off_x) / content_w, (x1 - off_x) / content_w
    top, bottom = (y0 - off_y) / content_h, (y1 - off_y) / content_h
    pad_x, pad_y = MARGIN * (right - left), MARGIN * (bottom - top)
    box = Box(
        *(
            round(min(max(v, 0.0), 1.0) * GRID) / GRID
            for v in (left - pad_x, top - pad_y, right + pad_x, bottom + pad_y)
        )
    )
    if box.right <= box.left or box.bottom <= box.top or box.area > MAX_BOX_AREA:
        return None
    return box
