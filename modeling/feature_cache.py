"""On-disk cache of what the frozen part of InceptionV3 computes for each image.

The lower InceptionV3 blocks (up to ``mixed8``) never change, so their output is
computed once per image and weights file: one ``.npy`` per image, holding (float16)
the ``mixed8`` maps with the pooled ``mixed5``-``mixed7`` outputs packed in as extra
channels, of the photo, its mirror image, and augmented views (random flip, rotation,
zoom, shift, brightness, contrast). Head training, fine-tuning of the top blocks,
evaluation and pool refreshes all start from here; only new images cost a forward
pass through the lower network.

This module needs numpy only, so queues can read features without loading Keras.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from shoelabel.settings import get_settings

VIEWS = 4  # the photo, its mirror image, and two augmented views
INCEPTION_CUT = "mixed8"  # InceptionV3 is frozen up to this block, fine-tuned above it
CUT_CHANNELS = 1280  # the channels of the cut's maps; a cached array packs the pooled lower blocks after them
LOW_BLOCKS = ("mixed5", "mixed6", "mixed7")  # frozen blocks whose pooled outputs the head also sees
LOW_FEATURES = 3 * 768
LAYOUT = 2  # 1: mixed8 maps only; 2: mixed8 maps and the pooled lower blocks


class FeatureCache:
    def __init__(self, root: Path, key: str) -> None:
        self.root = Path(root) / key
        self.key = key

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.npy"

    def views(self, sha256: str) -> int:
        """How many views of the image are cached (0: none). Reads the file header only."""
        try:
            return int(np.load(self.path(sha256), mmap_mode="r").shape[0])
        except (OSError, ValueError):
            return 0

    def has(self, sha256: str, views: int = 1) -> bool:
        """Whether at least ``views`` views are cached (prediction needs the photo alone)."""
        return self.views(sha256) >= views

    def missing(self, shas: Iterable[str], views: int = 1) -> list[str]:
        return [sha for sha in shas if not self.has(sha, views)]

    def put(self, sha256: str, activations: np.ndarray) -> None:
        """Store atomically, so concurrent processes never read half a file."""
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, activations.astype(np.float16, copy=False))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha256: str) -> np.ndarray:
        try:
            return np.load(self.path(sha256))
        except (OSError, ValueError) as exc:
            raise KeyError(f"no cached features for image {sha256[:12]} under {self.root}") from exc

    def load(self, shas: list[str], view: int | None = None, views: int = VIEWS) -> np.ndarray:
        """``(n, views, h, w, c)`` float16: the first ``views`` views of each image, or
        ``(n, h, w, c)`` of one view (0: the photo). Images cached with more views than
        asked (a fine-tuned model's four, where a head round wants two) are cut to ``views``."""
        if view is not None:
            arrays = [self.get(sha)[view] for sha in shas]
            return np.stack(arrays) if arrays else np.zeros((0, 1, 1, 1), np.float16)
        arrays = [self.get(sha)[:views] for sha in shas]
        if any(len(a) < views for a in arrays):
            raise KeyError(f"fewer than {views} cached views for some images under {self.root}")
        return np.stack(arrays) if arrays else np.zeros((0, views, 1, 1, 1), np.float16)

    def pooled(self, shas: list[str]) -> np.ndarray:
        """Spatially averaged ``mixed8`` maps of the photo itself: ``(n, c)`` float32."""
        maps = [self.get(sha)[0, ..., :CUT_CHANNELS] for sha in shas]
        return np.stack([m.astype(np.float32).mean(axis=(0, 1)) for m in maps])


def inception_activation_cache(weights_id: str, input_size: int, root: Path | None = None) -> FeatureCache:
    """The cache of what the frozen part computes, for one weights file and input size."""
    if root is None:
        root = get_settings().cache_dir / "activations"
    return FeatureCache(root, f"inception-{weights_id}-{input_size}-{INCEPTION_CUT}-v{VIEWS}-l{LAYOUT}")
