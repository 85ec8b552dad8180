"""What decoding one photo may cost: at most ``DECODE_BUDGET`` (4 bytes x 50 MP) over the idle process,
plus the file and a few MB of buffers, whatever the format or mode; nothing much for a photo refused
by its header. Each photo is decoded in a fresh process, whose peak memory (``getrusage``) is its own."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from shoelabel.images import DECODE_BUDGET
from tests.conftest import REPO

BUFFERS = 10e6  # the decoder's and the conversion's working buffers, besides the pixels and the file

MEASURE = """
import json, resource, sys
from PIL import Image
import numpy as np
from shoelabel import images

Image.init()
data = open(sys.argv[1], "rb").read()  # an upload arrives as bytes
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
idle = peak()
call = {"inspect": images.inspect, "upright_size": images.upright_size,
        "upload": lambda p: images.inspect_upload("upload.png", data),
        "load_array": lambda p: images.load_array(p, 128),
        "load_crop": lambda p: images.load_crop(p, (0, 0, 1, 0.5), 128)}
try:
    result = call[sys.argv[2]](sys.argv[1])
    outcome = {"ok": float(np.asarray(result).std()) if sys.argv[2].startswith("load") else str(result)}
except images.ImageError as exc:
    outcome = {"error": str(exc)}
print(json.dumps({**outcome, "over_idle": peak() - idle}))
"""


def decode_in_fresh_process(path: Path, how: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), how], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _grey16(path: Path, size: int) -> Path:
    image = Image.new("I;16", (size, size), 1000)
    image.paste(40000, (size // 4, size // 4, size // 2, size // 2))
    image.save(path)
    return path


@pytest.mark.slow
def test_a_16_bit_greyscale_png_under_the_cap_decodes_within_the_budget(tmp_path: Path) -> None:
    path = _grey16(tmp_path / "scan.png", 7000)  # 49 MP in about 100 kB
    assert Image.open(path).mode == "I;16"
    for how in ("inspect", "upload", "load_array", "load_crop"):
        measured = decode_in_fresh_process(path, how)
        assert "error" not in measured, measured
        assert measured["over_idle"] <= DECODE_BUDGET + path.stat().st_size + BUFFERS, (how, measured)
        if how.startswith("load"):
            assert measured["ok"] > 0  # the bright square shows: scaled to 8 bits, not clipped to white


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "RGB"])
@pytest.mark.slow
def test_big_pngs_of_every_mode_decode_within_the_budget(tmp_path: Path, mode: str) -> None:
    image = Image.new("RGBA", (7000, 7000), (200, 30, 30, 0))
    image.paste((10, 20, 30, 255), (1000, 1000, 4000, 4000))
    path = tmp_path / f"big-{mode}.png"
    image.convert(mode).save(path, **({"transparency": 0} if mode == "P" else {}))
    for how in ("inspect", "load_array"):
        measured = decode_in_fresh_process(path, how)
        assert "error" not in measured, measured
        assert measured["over_idle"] <= DECODE_BUDGET + path.stat().st_size + BUFFERS, (how, measured)


@pytest.mark.slow
def test_a_169_mp_png_is_refused_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "poster.png"
    Image.new("RGB", (13000, 13000), (5, 6, 7)).save(path)
    for how in ("inspect", "upright_size", "load_array", "upload"):
        measured = decode_in_fresh_process(path, how)
        name = "upload.png" if how == "upload" else "poster.png"
        assert f"{name}: image too large to decode safely (13000x13000 = 169 MP" in measured["error"], measured
        assert "resize it" in measured["error"]
        assert measured["over_idle"] < 30e6, (how, measured)


@pytest.mark.slow
def test_a_webp_that_would_cost_more_than_the_budget_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "banner.webp"
    Image.new("RGB", (7000, 7000), (5, 6, 7)).save(path, quality=10)  # Pillow's WebP decoder holds 4 copies
    measured = decode_in_fresh_process(path, "inspect")
    assert "banner.webp: image too large to decode safely (7000x7000 = 49 MP" in measured["error"], measured
    assert f"the limit is {DECODE_BUDGET / 1e6:.0f} MB" in measured["error"] and "save it as JPEG" in measured["error"]
    assert measured["over_idle"] < 30e6
    small = tmp_path / "photo.webp"
    Image.new("RGB", (3000, 3000), (5, 6, 7)).save(small, quality=10)
    measured = decode_in_fresh_process(small, "load_array")
    assert "error" not in measured and measured["over_idle"] <= DECODE_BUDGET + BUFFERS, measured


def _with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with another size in its frame header (SOF): what a crafted file claims."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at > 0:
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
    raise AssertionError("no frame header")


def test_a_progressive_jpeg_whose_coefficients_exceed_the_budget_is_refused_by_its_header(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (5, 6, 7)).save(buffer, format="JPEG", progressive=True, subsampling=0)
    path = tmp_path / "claims-144mp.jpg"
    path.write_bytes(_with_size(buffer.getvalue(), 12000, 12000))  # its decoder would hold 864 MB at any scale
    for how in ("inspect", "load_array"):
        measured = decode_in_fresh_process(path, how)
        assert "claims-144mp.jpg: image too large to decode safely (12000x12000" in measured["error"], measured
        assert measured["over_idle"] < 30e6, (how, measured)
    baseline = io.BytesIO()
    Image.new("RGB", (64, 64), (5, 6, 7)).save(baseline, format="JPEG")
    path = tmp_path / "baseline-144mp.jpg"
    path.write_bytes(_with_size(baseline.getvalue(), 12000, 12000))  # shrunk while decoding: no such cost
    measured = decode_in_fresh_process(path, "load_array")
    assert "too large" not in str(measured.get("error")) and measured["over_idle"] < 60e6, measured
