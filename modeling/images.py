"""Decoding photos from disk or bytes, robustly and by content.

Real photos are not all small JPEGs: phone photos are 12-24 MP with EXIF
orientation, web images may be PNG with transparency, WebP, greyscale, CMYK, or
a PNG named ``.jpg``. Everything here decodes by content (never by extension),
applies EXIF orientation, lets the JPEG decoder downscale while decoding
(``Image.draft``), and returns small RGB arrays: no caller holds a folder of
full-size pixels.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp"}
MIN_SIDE = 32
BACKGROUND = (255, 255, 255)

Source = str | Path | bytes
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


class ImageError(ValueError):
    """An image that cannot be used, with the file and the reason."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    width: int  # after EXIF orientation
    height: int
    format: str  # jpeg | png | webp | bmp
    file_size: int


def _name(source: Source) -> str:
    return "<uploaded bytes>" if isinstance(source, bytes) else str(source)


def _read_bytes(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ImageError(str(source), f"cannot read the file ({exc.strerror or exc})") from exc


def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageError(name, "not an image (content is not JPEG, PNG, WebP or BMP)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"image too large to decode safely ({exc})") from exc
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(name, f"unsupported format {image.format}; convert it to JPEG, PNG, WebP or BMP")
    return image


def _oriented_size(image: Image.Image, name: str) -> tuple[int, int]:
    try:
        orientation = image.getexif().get(0x0112, 1)
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt image metadata ({exc})") from exc
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _decode(image: Image.Image, name: str, draft_side: int | None) -> Image.Image:
    """Fully decode (detects truncation), downscaling JPEGs while decoding when asked."""
    try:
        if draft_side and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (draft_side, draft_side))
        image.load()
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB on a white background: transparency composited, CMYK/greyscale/16-bit converted."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / peak)).astype(np.uint8), mode="L")
    return image.convert("RGB")


def inspect(source: Source) -> ImageInfo:
    """Validate an image by decoding it; raise :class:`ImageError` with the reason."""
    name = _name(source)
    data = _read_bytes(source)
    image = _open(data, name)
    width, height = _oriented_size(image, name)
    _decode(image, name, draft_side=256)
    if min(width, height) < MIN_SIDE:
        raise ImageError(name, f"image too small to classify ({width}x{height}; needs at least {MIN_SIDE} px a side)")
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=SUPPORTED_FORMATS[image.format or ""],
        file_size=len(data),
    )


def open_rgb(source: Source, max_side: int | None = None) -> Image.Image:
    """Decode to an RGB image, at most ``max_side`` pixels on its longer side."""
    name = _name(source)
    image = _decode(_open(_read_bytes(source), name), name, draft_side=max_side)
    try:
        image = to_rgb(image)
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def square(image: Image.Image, size: int) -> Image.Image:
    """Fit into a ``size`` square keeping the aspect ratio; pad with the border colour."""
    fitted = ImageOps.contain(image, (size, size), Image.Resampling.BILINEAR)
    if fitted.size == (size, size):
        return fitted
    border = np.concatenate(
        [np.asarray(fitted)[[0, -1], :, :].reshape(-1, 3), np.asarray(fitted)[:, [0, -1], :].reshape(-1, 3)]
    )
    fill = tuple(int(v) for v in np.median(border, axis=0))
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return canvas


def load_array(source: Source, size: int) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 array ready for a model's preprocessing."""
    image = open_rgb(source, max_side=size * 2)
    return np.asarray(square(image, size), dtype=np.uint8)


def load_batch(sources: Iterable[Source], size: int, workers: int = 2) -> np.ndarray:
    """Decode several images in parallel threads (Pillow releases the GIL while decoding).

    Raises the first :class:`ImageError`; use :func:`iter_batches` to skip bad files instead.
    """
    sources = list(sources)
    if not sources:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(lambda s: load_array(s, size), sources)))


@dataclass
class Batch:
    indices: list[int]  # positions in the caller's list of the images decoded
    pixels: np.ndarray  # (len(indices), size, size, 3) uint8
    errors: list[tuple[int, ImageError]]  # positions that could not be decoded, and why


def _decode_batch(sources: list[Source], offset: int, size: int, pool: ThreadPoolExecutor) -> Batch:
    def attempt(source: Source) -> np.ndarray | ImageError:
        try:
            return load_array(source, size)
        except ImageError as exc:
            return exc

    results = list(pool.map(attempt, sources))
    good = [(offset + i, r) for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    errors = [(offset + i, r) for i, r in enumerate(results) if isinstance(r, ImageError)]
    pixels = np.stack([r for _, r in good]) if good else np.zeros((0, size, size, 3), np.uint8)
    return Batch([i for i, _ in good], pixels, errors)


def iter_batches(sources: list[Source], size: int, batch_size: int, workers: int = 2) -> Iterator[Batch]:
    """Yield decoded batches, decoding the next one in the background; bad files are reported, not raised."""
    if not sources:
        return
    with ThreadPoolExecutor(max_workers=workers) as decoders, ThreadPoolExecutor(1) as prefetcher:

        def submit(start: int) -> Future[Batch]:
            chunk = sources[start : start + batch_size]
            return prefetcher.submit(_decode_batch, chunk, start, size, decoders)

        future = submit(0)
        for start in range(0, len(sources), batch_size):
            batch = future.result()
            if start + batch_size < len(sources):
                future = submit(start + batch_size)
            yield batch


def list_images(folder: Path) -> list[Path]:
    """Every file under ``folder`` that is not hidden, sorted (content decides what is an image)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
