"""How fast does a folder ingest, and does the time per photo or the memory grow with the folder?

    python bench/bench_ingest.py [--images 100000] [--phone 200] [--hard 8] [--only-hard]
                                 [--json docs/bench-ingest.json]

Writes synthetic photos into a scratch folder (distinct files, so every one is stored):
``--images`` 240x240 JPEGs in three brand subfolders, a second set of 1,000 of them, and
``--phone`` 12 MP (4000x3000) phone-like JPEGs with EXIF orientation. Each ingest runs in a
fresh process on a fresh catalogue and is timed from the call to its report (listing, reading,
storing, the held-out draw; not the interpreter's start), with the process's peak memory (VmHWM):

* 1,000 small photos, then ``--images`` small photos, each into an empty catalogue;
* 1,000 more small photos into the catalogue that holds the ``--images`` ones;
* ``--phone`` phone photos into an empty catalogue;
* what decoding may cost: ``--hard`` 16-bit greyscale PNGs of 7000x7000 (49 MP in 100 kB each), a
  7000x7000 RGBA PNG and a 13000x13000 PNG (169 MP, refused), into an empty catalogue, with the bound
  the ingest should stay under (``READERS`` x ``DECODE_BUDGET`` over the memory before it).

``--only-hard`` runs the last one alone (a few seconds) and adds its figures to the JSON file.
Prints photos/s and peak memory per run; figures, not assertions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BRANDS = ("acme", "bolt", "crest")
SMALL_SIDE = 240
PHONE_SIZE = (4000, 3000)
VARIANTS = 64  # distinct small images; files differ from them by a JPEG comment (other bytes, same pixels)
PHONE_VARIANTS = 4


def _jpeg(pixels: np.ndarray, quality: int, orientation: int = 1) -> bytes:
    from PIL import Image

    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def _photo_like(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth shading, a few soft blobs and sensor noise: compresses like a photo, not like noise or flat colour."""
    from PIL import Image

    small_w, small_h = max(width // 8, 8), max(height // 8, 8)  # the smooth part, drawn small and enlarged
    y, x = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    pixels = rng.uniform(40, 200, 3).astype(np.float32) + np.zeros((small_h, small_w, 3), np.float32)
    pixels += (x / small_w)[..., None] * rng.uniform(-60, 60, 3) + (y / small_h)[..., None] * rng.uniform(-60, 60, 3)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, small_w), rng.uniform(0, small_h), rng.uniform(0.05, 0.3) * small_w
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        pixels += blob[..., None] * rng.uniform(-80, 80, 3)
    smooth = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").resize((width, height), Image.BILINEAR)
    noisy = np.asarray(smooth, np.int16) + rng.integers(-16, 17, (height, width, 3), dtype=np.int16)
    return np.clip(noisy, 0, 255)


def _with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a comment segment after its start marker: other bytes (another hash), same pixels."""
    comment = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def write_small(folder: Path, count: int, first: int) -> None:
    """``count`` distinct 240 px JPEGs, numbered from ``first``, spread over the brand subfolders."""
    rng = np.random.default_rng(0)
    variants = [_jpeg(_photo_like(rng, SMALL_SIDE, SMALL_SIDE), quality=85) for _ in range(VARIANTS)]
    for brand in BRANDS:
        (folder / brand).mkdir(parents=True, exist_ok=True)
    for n in range(first, first + count):
        brand = BRANDS[n % len(BRANDS)]
        (folder / brand / f"photo_{n:07d}.jpg").write_bytes(_with_comment(variants[n % VARIANTS], f"photo {n}"))


def write_phone(folder: Path, count: int) -> None:
    """``count`` distinct 12 MP phone-like JPEGs (quality 90, half of them turned by EXIF orientation)."""
    rng = np.random.default_rng(1)
    width, height = PHONE_SIZE
    variants = [
        _jpeg(_photo_like(rng, width, height), quality=90, orientation=6 if v % 2 else 1) for v in range(PHONE_VARIANTS)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (folder / f"IMG_{n:05d}.jpg").write_bytes(_with_comment(variants[n % PHONE_VARIANTS], f"phone {n}"))


def write_hard(folder: Path, count: int) -> None:
    """Photos that are small files but big decodes: ``count`` distinct 16-bit greyscale PNGs of 7000x7000,
    one RGBA PNG of 7000x7000 and one PNG of 13000x13000 (over the 50 MP cap)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        scan = Image.new("I;16", (7000, 7000), 1000 + n)
        scan.paste(40000, (1000 + 10 * n, 1000, 4000, 4000))
        scan.save(folder / f"scan_{n:02d}.png")
    cutout = Image.new("RGBA", (7000, 7000), (0, 0, 0, 0))
    cutout.paste((200, 30, 30, 255), (1000, 1000, 6000, 6000))
    cutout.save(folder / "cutout.png")
    Image.new("RGB", (13000, 13000), (5, 6, 7)).save(folder / "poster.png")


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc (Linux), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def measure(folder: Path, home: Path) -> dict[str, object]:
    """Ingest ``folder`` into the catalogue in ``home`` in this process; its time and memory."""
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ.pop("SHOELABEL_DB", None)
    from db import get_engine
    from feedback.ingest import READERS, ingest_folder
    from shoelabel.images import DECODE_BUDGET

    engine = get_engine()  # migrations run before the clock starts
    rss_before = _status_mb("VmRSS")
    started = time.perf_counter()
    report = ingest_folder(folder, engine=engine, show_bar=True)
    seconds = time.perf_counter() - started
    photos = report.usable + len(report.skipped)
    return {
        "photos": photos,
        "added": report.added,
        "seconds": round(seconds, 2),
        "photos_per_s": round(photos / seconds, 1),
        "rss_before_mb": rss_before,
        "peak_rss_mb": _status_mb("VmHWM"),
        "readers": READERS,
        "decode_bound_mb": round(READERS * DECODE_BUDGET / 2**20, 1),  # what the ingest may add to rss_before
    }


def run_measure(folder: Path, home: Path) -> dict[str, object]:
    """:func:`measure` in a fresh process (the bar goes to this terminal)."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", str(folder), "--home", str(home)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000, help="240 px JPEGs in the large run (default 100000)")
    parser.add_argument("--phone", type=int, default=200, help="12 MP phone JPEGs (default 200; 0 skips them)")
    parser.add_argument("--hard", type=int, default=8, help="7000x7000 16-bit PNGs in the memory run (default 8)")
    parser.add_argument("--only-hard", action="store_true", help="run only the memory run; add it to the JSON")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-ingest.json", help="where the figures go")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary one, removed after)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process: one timed ingest
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.home)))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        figures = _run_hard(work, args.hard, args.json) if args.only_hard else _run(work, args.images, args.phone)
        if args.hard and not args.only_hard:
            figures["runs"].update(_run_hard(work, args.hard, None)["runs"])
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nFigures written to {args.json}")


def _run(work: Path, images: int, phone: int) -> dict[str, object]:
    started = time.perf_counter()
    write_small(work / "small-1000", 1000, first=0)
    write_small(work / f"small-{images}", images, first=1000)
    write_small(work / "small-1000-more", 1000, first=1000 + images)
    if phone:
        write_phone(work / f"phone-{phone}", phone)
    print(f"Wrote the photos in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    runs = {
        "small_1000": run_measure(work / "small-1000", work / "home-1000"),
        f"small_{images}": run_measure(work / f"small-{images}", work / "home-large"),
        f"small_1000_into_{images}": run_measure(work / "small-1000-more", work / "home-large"),
    }
    if phone:
        runs[f"phone_{phone}"] = run_measure(work / f"phone-{phone}", work / "home-phone")
    _print_runs(runs)
    return {
        "command": f"python bench/bench_ingest.py --images {images} --phone {phone}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
        "runs": runs,
    }


def _print_runs(runs: dict[str, dict[str, object]]) -> None:
    print(f"\n{'run':<28} {'photos':>8} {'seconds':>9} {'photos/s':>9} {'peak MB':>8} {'MB before':>10}")
    for name, run in runs.items():
        print(
            f"{name:<28} {run['photos']:>8} {run['seconds']:>9} {run['photos_per_s']:>9} "
            f"{run['peak_rss_mb']:>8} {run['rss_before_mb']:>10}"
        )


def _run_hard(work: Path, hard: int, previous: Path | None) -> dict[str, object]:
    """The memory run; with ``previous`` (the JSON file), its figures added to those already there."""
    write_hard(work / "hard", hard)
    run = run_measure(work / "hard", work / "home-hard")
    added = float(run["peak_rss_mb"]) - float(run["rss_before_mb"])
    print(f"\nhard photos: the ingest added {added:.0f} MB to the process; the bound is {run['decode_bound_mb']} MB")
    _print_runs({f"hard_{hard}": run})
    figures: dict[str, object] = {"runs": {}}
    if previous is not None and previous.is_file():
        figures = json.loads(previous.read_text())
    figures["runs"][f"hard_{hard}"] = run  # type: ignore[index]
    return figures


if __name__ == "__main__":
    main()
