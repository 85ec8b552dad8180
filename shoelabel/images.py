"""Decoding photos from disk or bytes, robustly and by content.

Real photos are not all small JPEGs: phone photos are 12-24 MP with EXIF
orientation, web images may be PNG with transparency, WebP, greyscale, CMYK, or
a PNG named ``.jpg``. Everything here decodes by content (never by extension),
applies EXIF orientation, lets the JPEG decoder downscale while decoding
(``Image.draft``), and returns small RGB arrays: no caller holds a folder of
full-size pixels.

Memory stays bounded whatever the input: only regular files are opened (a FIFO,
device or socket is refused without being read), the first bytes are sniffed
before the rest is read (a big non-image is never read whole), files over
:data:`MAX_FILE_BYTES` are refused, and so are images over :data:`MAX_PIXELS`
once the JPEG decoder has downscaled what it can.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from shoelabel.errors import UserError
from shoelabel.paths import file_path, shown_path

SUPPORTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp"}
MIN_SIDE = 32
BACKGROUND = (255, 255, 255)
HEADER_BYTES = 4096  # enough for Pillow to tell the format from the first bytes
MAX_FILE_BYTES = 100_000_000  # larger files are refused before they are read
MAX_PIXELS = 50_000_000  # decoded size cap (after JPEG downscaling): 50 MP are 200 MB in Pillow's RGB
DECODE_BUDGET = 4 * MAX_PIXELS  # bytes one decode may hold besides the file itself: 200 MB
DECODER_COPIES = {"WEBP": 4}  # Pillow's WebP decoder holds libwebp's canvas and frame, their bytes, the image
JPEG_SHRINK = 8  # the most the JPEG decoder shrinks while decoding (Image.draft)
TILE = 256  # photos are converted to RGB a tile of about this many pixels a side at a time (1 MB or less)

Source = str | Path | bytes
Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


class ImageError(UserError, ValueError):
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
    return "<uploaded bytes>" if isinstance(source, bytes) else shown_path(source)


@contextmanager
def _one_photo(name: str) -> Iterator[None]:
    """Whatever goes wrong decoding or resizing one photo becomes that photo's :class:`ImageError`
    (a malformed file can upset Pillow or numpy in ways no list of exceptions foresees), so that a
    batch goes on without it; running out of memory, or Ctrl-C, still stops the caller."""
    try:
        yield
    except (ImageError, MemoryError):
        raise
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    except Exception as exc:
        raise ImageError(name, f"cannot decode or resize the image ({type(exc).__name__}: {exc})") from exc


def _file_size(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.{0 if n >= 1e7 else 1}f} MB"
    return f"{n / 1e3:.1f} kB"


def _too_large(name: str, size: int) -> ImageError:
    return ImageError(
        name,
        f"file too large ({_file_size(size)}; the limit is {_file_size(MAX_FILE_BYTES)}): "
        "save the photo smaller (e.g. as JPEG, 4000 px on the longer side) and add it again",
    )


def _sniff(header: bytes, name: str) -> str:
    """The Pillow format of an image file from its first bytes; non-images are refused here."""
    if not header:
        raise ImageError(name, "empty file (0 bytes)")
    Image.init()
    prefix = header[:16]  # what Image.open itself shows each format's check

    def accepts(accept: Callable[[bytes], object] | None) -> bool:
        try:
            return accept is not None and bool(accept(prefix))
        except (*DECODE_ERRORS, IndexError, TypeError):  # a few bytes too short for that format's check
            return False

    for fmt, (_, accept) in Image.OPEN.items():
        if fmt in SUPPORTED_FORMATS and accepts(accept):
            return fmt
    for fmt, (_, accept) in Image.OPEN.items():
        if accepts(accept):
            raise ImageError(name, f"unsupported format {fmt}; convert it to JPEG, PNG, WebP or BMP")
    raise ImageError(name, "not an image (content is not JPEG, PNG, WebP or BMP)")


_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a named pipe (FIFO)",
    stat.S_ISCHR: "a device",
    stat.S_ISBLK: "a device",
    stat.S_ISSOCK: "a socket",
}


def _check_regular(mode: int, name: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((kind for test, kind in _KINDS.items() if test(mode)), "not a regular file")
        raise ImageError(name, f"{kind}, not a photo file: only regular files can be read; give the photo file itself")


def _read_bytes(source: Source) -> bytes:
    """The file's content, read only once it is known to be a regular image file of a sane size."""
    if isinstance(source, bytes):
        _sniff(source[:HEADER_BYTES], _name(source))
        if len(source) > MAX_FILE_BYTES:
            raise _too_large(_name(source), len(source))
        return source
    name = shown_path(source)
    source = file_path(os.fspath(source))  # a path stored as a file:// URL (a name that is not UTF-8)
    try:
        _check_regular(os.stat(source).st_mode, name)  # never open a FIFO or device: it may block or never end
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageError(name, f"cannot read the file ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(handle.fileno())
            _check_regular(info.st_mode, name)  # replaced since the stat above
            header = handle.read(HEADER_BYTES)
            _sniff(header, name)
            if info.st_size > MAX_FILE_BYTES:
                raise _too_large(name, info.st_size)
            data = header + handle.read(MAX_FILE_BYTES + 1 - len(header))
        except OSError as exc:
            raise ImageError(name, f"cannot read the file ({exc.strerror or exc})") from exc
    if len(data) > MAX_FILE_BYTES:  # grew while being read
        raise _too_large(name, len(data))
    return data


def _open(data: bytes, name: str) -> Image.Image:
    """The image's header, parsed; refused here, before any pixel is decoded, when decoding it would
    take more than :data:`MAX_PIXELS` or :data:`DECODE_BUDGET` even at the smallest scale it allows."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageError(name, "not an image (content is not JPEG, PNG, WebP or BMP)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            name, f"image too large to decode safely ({exc}); resize it (e.g. to 4000 px on the longer side)"
        ) from exc
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(name, f"unsupported format {image.format}; convert it to JPEG, PNG, WebP or BMP")
    # refused now: reading the orientation may decode a PNG (its eXIf chunk can follow the pixels)
    shrink = JPEG_SHRINK if image.format in ("JPEG", "MPO") else 1
    _check_pixels(image, name, data, _jpeg_coefficients(image, data), shrink)
    return image


def _orientation(image: Image.Image, name: str) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (*DECODE_ERRORS, TypeError) as exc:
        raise ImageError(name, f"corrupt image metadata ({exc})") from exc


def _oriented_size(image: Image.Image, name: str) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if _orientation(image, name) in (5, 6, 7, 8) else (width, height)


def _bytes_per_pixel(mode: str) -> int:
    """What a pixel takes in Pillow's memory (RGB takes 4 bytes, like RGBA)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _first_scan_components(data: bytes) -> int:
    """How many colour components a JPEG's first scan holds (0 when its headers cannot be walked)."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == 0xDA:  # start of scan: its first byte after the length is the component count
            return data[at + 4] if at + 4 < len(data) else 0
        else:
            at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return 0


def _jpeg_coefficients(image: Image.Image, data: bytes) -> int:
    """Bytes libjpeg holds for a JPEG of several scans (progressive ones): every DCT coefficient of the
    full-size image (2 bytes each), at whatever scale it decodes; 0 for a JPEG decoded a row at a time."""
    layers = getattr(image, "layer", None) if image.format in ("JPEG", "MPO") else None
    if not layers or (not image.info.get("progressive") and _first_scan_components(data) >= len(layers)):
        return 0
    width, height = image.size  # full size: called before any draft
    h_max, v_max = max(layer[1] for layer in layers), max(layer[2] for layer in layers)
    blocks = sum(math.ceil(width * h / h_max / 8) * math.ceil(height * v / v_max / 8) for _, h, v, *_ in layers)
    return blocks * 64 * 2


def _check_pixels(image: Image.Image, name: str, data: bytes, coefficients: int, shrink: int = 1) -> None:
    """Refuse to decode more than :data:`MAX_PIXELS`, or what would take more than :data:`DECODE_BUDGET`
    (the pixels in Pillow's layout, the decoder's own copies, a progressive JPEG's ``coefficients``), at
    the size it is decoded at divided by ``shrink`` (the most a JPEG can still be shrunk while decoding)."""
    width, height = image.size
    pixels = math.ceil(width / shrink) * math.ceil(height / shrink)
    size = f"{width}x{height} = {width * height / 1e6:.0f} MP, {_file_size(len(data))} file"
    if pixels > MAX_PIXELS:
        raise ImageError(
            name,
            f"image too large to decode safely ({size}; the limit is {MAX_PIXELS / 1e6:.0f} MP): resize it "
            "(e.g. to 4000 px on the longer side) or save it as JPEG, then add it again",
        )
    copies = DECODER_COPIES.get(image.format or "", 1)
    cost = pixels * _bytes_per_pixel(image.mode) * copies + coefficients
    if cost > DECODE_BUDGET:
        raise ImageError(
            name,
            f"image too large to decode safely ({size}, {image.format} {image.mode}: decoding it would take "
            f"about {cost / 1e6:.0f} MB; the limit is {DECODE_BUDGET / 1e6:.0f} MB): resize it "
            "(e.g. to 4000 px on the longer side) or save it as JPEG, then add it again",
        )


def _decode(image: Image.Image, name: str, draft_side: int | None, data: bytes) -> Image.Image:
    """Fully decode (detects truncation), downscaling JPEGs while decoding when asked."""
    coefficients = _jpeg_coefficients(image, data)  # of the full size: before the draft
    try:
        if draft_side and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (draft_side, draft_side))
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    _check_pixels(image, name, data, coefficients)
    try:
        image.load()
    except DECODE_ERRORS as exc:
        raise ImageError(name, f"corrupt or truncated image data ({exc})") from exc
    return image


_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # EXIF orientation -> the turn that makes the photo upright (as ImageOps.exif_transpose)

_STORED_POINT = {  # (x, y) of the upright photo, as fractions -> the same point in the stored pixels
    Image.Transpose.FLIP_LEFT_RIGHT: lambda x, y: (1 - x, y),
    Image.Transpose.ROTATE_180: lambda x, y: (1 - x, 1 - y),
    Image.Transpose.FLIP_TOP_BOTTOM: lambda x, y: (x, 1 - y),
    Image.Transpose.TRANSPOSE: lambda x, y: (y, x),
    Image.Transpose.ROTATE_270: lambda x, y: (y, 1 - x),
    Image.Transpose.TRANSVERSE: lambda x, y: (1 - y, 1 - x),
    Image.Transpose.ROTATE_90: lambda x, y: (1 - y, x),
}


def _stored_box(box: tuple[float, float, float, float], turn: Image.Transpose | None, size: tuple[int, int]) -> Box:
    """The region ``box`` (fractions of the upright photo) in pixels of the stored image, at least 1 px."""
    left, top, right, bottom = box
    if turn is not None:
        (x0, y0), (x1, y1) = _STORED_POINT[turn](left, top), _STORED_POINT[turn](right, bottom)
        left, top, right, bottom = min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
    width, height = size
    x0, y0 = min(max(round(left * width), 0), width - 1), min(max(round(top * height), 0), height - 1)
    return x0, y0, min(max(round(right * width), x0 + 1), width), min(max(round(bottom * height), y0 + 1), height)


def _tile_rgb(tile: Image.Image, peak: int) -> Image.Image:
    """A few MB of a photo in RGB on a white background: transparency composited, CMYK, greyscale and
    16-bit converted (16-bit scaled by ``peak``, the photo's brightest value, in integers)."""
    if tile.mode in ("RGBA", "LA", "PA") or (tile.mode == "P" and "transparency" in tile.info):
        rgba = tile.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if tile.mode.startswith("I"):
        values = np.clip(np.asarray(tile).astype(np.int64), 0, None)
        tile = Image.fromarray((values * 255 // peak).astype(np.uint8))
    return tile if tile.mode == "RGB" else tile.convert("RGB")


def _rgb_tiles(image: Image.Image, region: Box, factor: int) -> Image.Image:
    """``region`` of ``image`` in RGB, shrunk ``factor`` times (box filter), converted a tile at a time:
    besides the decoded image it holds the result and a few MB, in any mode."""
    peak = max(int(image.getextrema()[1]), 1) if image.mode.startswith("I") else 1
    left, top, right, bottom = region
    out = Image.new("RGB", (math.ceil((right - left) / factor), math.ceil((bottom - top) / factor)))
    step = max(1, TILE // factor) * factor  # a whole number of the boxes averaged
    for y in range(top, bottom, step):
        for x in range(left, right, step):
            tile = _tile_rgb(image.crop((x, y, min(x + step, right), min(y + step, bottom))), peak)
            out.paste(tile.reduce(factor) if factor > 1 else tile, ((x - left) // factor, (y - top) // factor))
    return out


def _upright_rgb(
    image: Image.Image, name: str, max_side: int | None, box: tuple[float, float, float, float] | None = None
) -> Image.Image:
    """A decoded photo turned upright (EXIF) in RGB, at most ``max_side`` px on its longer side; ``box``
    (fractions of the upright photo) crops it first. Shrunk before it is converted or turned, so that
    nothing of its full size is copied (an RGB photo without a box is returned as it is, shrunk in place)."""
    turn = _UPRIGHT.get(_orientation(image, name))
    if image.mode == "RGB" and box is None:
        rgb = image
    else:
        region = _stored_box(box or (0.0, 0.0, 1.0, 1.0), turn, image.size)
        longest = max(region[2] - region[0], region[3] - region[1])
        rgb = _rgb_tiles(image, region, max(1, longest // (2 * max_side)) if max_side else 1)
    if max_side and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb.transpose(turn) if turn is not None else rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """A decoded photo upright in RGB on a white background, at full size."""
    return _upright_rgb(image, "<image>", None)


def inspect(source: Source) -> ImageInfo:
    """Validate an image by decoding it; raise :class:`ImageError` with the reason."""
    name = _name(source)
    with _one_photo(name):
        data = _read_bytes(source)
        image = _open(data, name)
        width, height = _oriented_size(image, name)
        _decode(image, name, draft_side=256, data=data)
    if min(width, height) < MIN_SIDE:
        raise ImageError(name, f"image too small to classify ({width}x{height}; needs at least {MIN_SIDE} px a side)")
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=SUPPORTED_FORMATS[image.format or ""],
        file_size=len(data),
    )


def inspect_upload(name: str, data: bytes) -> ImageInfo:
    """Decode the upload by content; :class:`ImageError` names the uploaded file and says why not."""
    try:
        return inspect(bytes(data))
    except ImageError as exc:
        raise ImageError(name or "upload", exc.reason) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # e.g. a header cut short: Pillow fails while opening
        raise ImageError(name or "upload", f"corrupt or truncated image data ({exc})") from exc


def open_rgb(source: Source, max_side: int | None = None) -> Image.Image:
    """Decode to an RGB image, at most ``max_side`` pixels on its longer side (without it: full size,
    which takes up to twice the decoding's memory)."""
    name = _name(source)
    with _one_photo(name):
        data = _read_bytes(source)
        return _upright_rgb(_decode(_open(data, name), name, draft_side=max_side, data=data), name, max_side)


def fitted_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image scaled to ``side`` on its longer side, at least a pixel
    each way (a 32x6000 strip fitted into 128 px is 1 px wide, never 0)."""
    scale = side / max(width, height)
    return max(1, min(side, round(width * scale))), max(1, min(side, round(height * scale)))


def square(image: Image.Image, size: int) -> Image.Image:
    """Fit into a ``size`` square keeping the aspect ratio; pad with the border colour."""
    fitted = image.resize(fitted_size(*image.size, size), Image.Resampling.BILINEAR)
    if fitted.size == (size, size):
        return fitted
    pixels = np.asarray(fitted)
    border = np.concatenate([pixels[[0, -1], :, :].reshape(-1, 3), pixels[:, [0, -1], :].reshape(-1, 3)])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return canvas


def load_array(source: Source, size: int) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 array ready for a model's preprocessing."""
    with _one_photo(_name(source)):
        image = open_rgb(source, max_side=size * 2)
        return np.asarray(square(image, size), dtype=np.uint8)


def upright_size(source: Source) -> tuple[int, int]:
    """Width and height of the photo once turned upright (EXIF), from its header (no pixels decoded)."""
    name = _name(source)
    with _one_photo(name):
        return _oriented_size(_open(_read_bytes(source), name), name)


def load_crop(source: Source, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The region ``box`` (left, top, right, bottom: fractions of the upright photo) as a ``(size, size, 3)``
    uint8 array; a JPEG is decoded only as large as the region needs."""
    name = _name(source)
    with _one_photo(name):
        data = _read_bytes(source)
        image = _open(data, name)
        width, height = _oriented_size(image, name)
        left, top, right, bottom = box
        longest = max((right - left) * width, (bottom - top) * height, 1.0)
        needed = min(max(width, height), math.ceil(size * max(width, height) / longest))
        image = _decode(image, name, draft_side=needed, data=data)
        return np.asarray(square(_upright_rgb(image, name, size * 2, box), size), dtype=np.uint8)


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
            with _one_photo(_name(source)):
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


def link_target(link: Path, root: Path) -> tuple[Path | None, str]:
    """Where the symlink ``link`` leads, or None and why it is left out.

    Broken links, loops, and links leading outside ``root`` (the folder being read) are left out.
    """
    try:
        target = link.resolve(strict=True)
    except RuntimeError:
        return None, "symlink loop (it leads back to itself, directly or through other links); remove the link"
    except OSError:
        return None, "broken symlink (its target does not exist); remove the link or restore the target"
    root = root.resolve()
    if root.is_relative_to(target):
        return None, f"symlink loop: it points to {target}, which contains the folder being read; remove the link"
    if not target.is_relative_to(root):
        return None, f"symlink to {target}, outside {root}; copy the photo(s) into the folder instead"
    if target.is_dir() and link.parent.resolve().is_relative_to(target):
        return None, f"symlink loop: it points to {target}, a folder that contains the link; remove the link"
    return target, ""


def list_images(folder: Path, *, root: Path | None = None, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every file under ``folder`` that is not hidden, sorted (content decides what is an image).

    Symlinks inside ``root`` (default: ``folder``) are followed; broken ones, loops and links
    leading outside ``root`` are left out and, when ``skipped`` is given, added to it with the reason.
    Entries that are neither folders nor regular files (a FIFO, a device) are listed, so that
    reading them reports why they cannot be used.
    """
    left_out = skipped if skipped is not None else []
    return list(walk_files(folder, (root or folder).resolve(), left_out))


def walk_files(directory: Path, root: Path, skipped: list[tuple[Path, str]]) -> Iterator[Path]:
    """The files under ``directory`` as :func:`list_images` lists them, one at a time.

    The walk goes depth-first through each folder's entries sorted by name, which is the order
    of the sorted paths; it holds the entry names of the folders it is in, never the whole tree.
    """
    return _walk(directory, root, frozenset({directory.resolve()}), skipped)


def _entry_names(directory: Path, skipped: list[tuple[Path, str]]) -> list[str]:
    """The names in ``directory`` that are not hidden, sorted; an unreadable folder is left out with the reason."""
    try:
        with os.scandir(directory) as scan:
            return sorted(entry.name for entry in scan if not entry.name.startswith("."))
    except OSError as exc:
        skipped.append((directory, f"cannot list the folder ({exc.strerror or exc})"))
        return []


def _walk(directory: Path, root: Path, chain: frozenset[Path], skipped: list[tuple[Path, str]]) -> Iterator[Path]:
    """Yield the files under ``directory``; ``chain`` holds the real folders above (to stop loops)."""
    for name in _entry_names(directory, skipped):
        path = directory / name
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # gone since the folder was listed: reading it says so
            yield path
            continue
        if stat.S_ISLNK(mode):
            target, reason = link_target(path, root)
            if target is None:
                skipped.append((path, reason))
            elif not target.is_dir():
                yield path
            elif target in chain:
                skipped.append((path, f"symlink loop: it points to {target}, which is being read already"))
            else:
                yield from _walk(path, root, chain | {target}, skipped)
        elif stat.S_ISDIR(mode):
            yield from _walk(path, root, chain | {path.resolve()}, skipped)
        else:
            yield path


class FolderError(UserError, ValueError):
    """A folder that cannot be read as photos (missing, not a folder, nothing usable in it)."""


@dataclass
class FolderListing:
    """A folder of class subfolders (labelled) or of photos (unlabelled), read lazily.

    :meth:`files` walks it (the photos beside the subfolders first, then each subfolder, each in
    sorted order) holding only the entry names of the folders it is in, so a folder of any size
    can be streamed; walking it again gives the same files in the same order.
    """

    folder: Path
    labelled: bool  # it has class subfolders
    classes: list[str]  # the subfolders' names, sorted

    def files(self, skipped: list[tuple[Path, str]] | None = None) -> Iterator[tuple[Path, str | None]]:
        """Each file with its class (None for the photos beside the subfolders); the entries left out
        (symlinks that loop, are broken or lead outside, unreadable folders) go to ``skipped`` with the reason."""
        left_out = skipped if skipped is not None else []
        for name in _entry_names(self.folder, left_out):
            path = self.folder / name
            is_dir, reason = _top_entry(path, self.folder)
            if reason:
                left_out.append((path, reason))
            elif not is_dir:
                yield path, None
        for name in self.classes:
            yield from ((path, name) for path in walk_files(self.folder / name, self.folder, left_out))

    def count(self, skipped: list[tuple[Path, str]] | None = None, found: Callable[[], None] | None = None) -> int:
        """How many files :meth:`files` yields (``found`` is called for each); :class:`FolderError` for none."""
        left_out = skipped if skipped is not None else []
        total = 0
        for _ in self.files(left_out):
            total += 1
            if found is not None:
                found()
        if not total:
            raise _no_files(self.folder, left_out)
        return total


def _no_files(folder: Path, skipped: list[tuple[Path, str]]) -> FolderError:
    left_out = "".join(f"\n  {path.relative_to(folder)}: {reason}" for path, reason in skipped)
    return FolderError(
        f"No files in {folder}. Put photos in it (unlabelled) or one subfolder per class (labelled).{left_out}"
    )


def _top_entry(path: Path, folder: Path) -> tuple[bool, str]:
    """Whether an entry of ``folder`` is a (class) folder, and why it is left out ("" when it is not)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # gone since the folder was listed: reading it says so
        return False, ""
    if not stat.S_ISLNK(mode):
        return stat.S_ISDIR(mode), ""
    target, reason = link_target(path, folder)
    return target is not None and target.is_dir(), reason


def open_folder(folder: Path) -> FolderListing:
    """A folder's listing, without decoding anything; :class:`FolderError` when it is missing or not a folder."""
    if not folder.exists():
        raise FolderError(f"Folder not found: {folder}")
    if not folder.is_dir():
        raise FolderError(f"Not a folder: {folder}. Give a folder of photos, or of one subfolder per class.")
    classes = [name for name in _entry_names(folder, []) if _top_entry(folder / name, folder) == (True, "")]
    return FolderListing(folder, bool(classes), classes)


@dataclass
class FolderScan:
    """What a folder holds: each file with its class (its subfolder's name; None for a flat folder's
    photos), and every entry left out with the reason (symlinks that loop, are broken or lead outside)."""

    folder: Path
    labelled: bool  # it has class subfolders
    files: list[tuple[Path, str | None]]
    skipped: list[tuple[Path, str]]


def scan_folder(folder: Path) -> FolderScan:
    """Read a folder of class subfolders (labelled) or of photos (unlabelled) whole, without decoding anything."""
    listing = open_folder(folder)
    skipped: list[tuple[Path, str]] = []
    files = list(listing.files(skipped))
    if not files:
        raise _no_files(folder, skipped)
    return FolderScan(folder, listing.labelled, files, skipped)
