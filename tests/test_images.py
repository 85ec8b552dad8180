"""Decoding real-world photos: by content, EXIF orientation, transparency, odd modes, bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shoelabel.images import ImageError, inspect, iter_batches, load_array, open_rgb, square
from tests.conftest import make_photo, without_hanging


def test_png_named_jpg_is_decoded_by_content(tmp_path: Path) -> None:
    path = make_photo(tmp_path / "actually_png.jpg", fmt="PNG")
    info = inspect(path)
    assert info.format == "png"
    assert load_array(path, 32).shape == (32, 32, 3)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (120, 60), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 60, 60))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif.tobytes())
    info = inspect(path)
    assert (info.width, info.height) == (60, 120)
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape[:2] == (120, 60)
    assert rgb[5, 30, 2] > 200 and rgb[5, 30, 0] < 60  # the blue half is now on top


def test_transparent_png_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((10, 20, 30, 255), (16, 16, 48, 48))
    path = tmp_path / "cutout.png"
    image.save(path)
    rgb = np.asarray(open_rgb(path))
    assert tuple(rgb[0, 0]) == (255, 255, 255)
    assert tuple(rgb[32, 32]) == (10, 20, 30)


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "I;16"])
def test_unusual_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    fmt = {"CMYK": "JPEG", "I;16": "PNG"}.get(mode, "PNG")
    path = make_photo(tmp_path / f"photo_{mode.replace(';', '')}.img", mode=mode, fmt=fmt)
    array = load_array(path, 48)
    assert array.shape == (48, 48, 3) and array.dtype == np.uint8
    assert array.std() > 0


def test_webp_and_bmp(tmp_path: Path) -> None:
    for fmt in ("WEBP", "BMP"):
        path = make_photo(tmp_path / f"photo.{fmt.lower()}", fmt=fmt)
        assert inspect(path).format == fmt.lower()


def test_large_jpeg_is_downscaled_while_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (120, 80, 40)).save(path, quality=80)
    image = open_rgb(path, max_side=299)
    assert max(image.size) == 299
    assert image.size == (299, 224)


def test_square_pads_with_border_colour_and_keeps_aspect() -> None:
    image = Image.new("RGB", (200, 100), (250, 250, 250))
    image.paste((0, 0, 0), (90, 40, 110, 60))
    out = np.asarray(square(image, 100))
    assert out.shape == (100, 100, 3)
    assert tuple(out[5, 50]) == (250, 250, 250)  # padding takes the border colour
    assert out[50, 50].max() < 30  # the content stays centred


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is a text file, not a photo", "not an image"),
    ],
)
def test_bad_files_are_named_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        inspect(path)
    assert reason in err.value.reason
    assert "bad.jpg" in str(err.value)


def test_truncated_jpeg_is_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        inspect(path)


def test_too_small_image_is_rejected(tmp_path: Path) -> None:
    path = make_photo(tmp_path / "icon.png", size=(16, 16), fmt="PNG")
    with pytest.raises(ImageError, match="too small"):
        inspect(path)


def test_unsupported_format_says_what_to_do(tmp_path: Path) -> None:
    path = make_photo(tmp_path / "anim.gif", fmt="GIF")
    with pytest.raises(ImageError, match="convert it to JPEG"):
        inspect(path)


def test_iter_batches_reports_bad_files_and_keeps_order(tmp_path: Path) -> None:
    good = [make_photo(tmp_path / f"g{i}.png", seed=i, fmt="PNG") for i in range(5)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    sources = [good[0], good[1], bad, good[2], good[3], good[4]]
    batches = list(iter_batches(sources, 32, batch_size=4))
    indices = [i for b in batches for i in b.indices]
    errors = [i for b in batches for i, _ in b.errors]
    assert indices == [0, 1, 3, 4, 5]
    assert errors == [2]
    first = batches[0].pixels[0]
    assert np.array_equal(first, load_array(good[0], 32))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_files_cut_short_anywhere_are_image_errors(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(buffer, format=fmt)
    data = buffer.getvalue()
    for cut in range(1, len(data), max(1, len(data) // 40)):
        with pytest.raises(ImageError):
            load_array(data[:cut], 32)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def test_a_huge_png_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    from shoelabel.images import MAX_PIXELS

    path = tmp_path / "poster.png"
    Image.new("1", (13000, 13000)).save(path)  # 169 MP in 20 kB: 0.5 GB once decoded to RGB
    before = _peak_rss_mb()
    for attempt in (inspect, open_rgb, lambda p: load_array(p, 64)):
        with pytest.raises(ImageError, match="too large to decode safely") as err:
            attempt(path)
        assert err.value.reason.startswith("image too large to decode safely (13000x13000 = 169 MP, 20.6 kB file")
        assert "resize it" in err.value.reason
        assert f"{MAX_PIXELS / 1e6:.0f} MP" in err.value.reason and "poster.png" in str(err.value)
    assert _peak_rss_mb() - before < 100


def test_a_big_jpeg_is_fine_when_the_decoder_can_shrink_it(tmp_path: Path) -> None:
    path = tmp_path / "panorama.jpg"
    Image.new("L", (8000, 7000), 128).save(path, quality=50)  # 56 MP: over the cap at full size
    assert (inspect(path).width, inspect(path).height) == (8000, 7000)
    assert load_array(path, 64).shape == (64, 64, 3)
    with pytest.raises(ImageError, match="too large to decode safely"):
        open_rgb(path)  # full size asked for: refused


def test_a_big_non_image_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "disk.jpg"
    with path.open("wb") as handle:
        handle.truncate(1_500_000_000)  # sparse: 1.5 GB of zeros that take no disk space
    before = _peak_rss_mb()
    with pytest.raises(ImageError, match="not an image"):
        inspect(path)
    assert _peak_rss_mb() - before < 100


def test_a_file_over_the_size_cap_is_refused_without_being_read(tmp_path: Path) -> None:
    from shoelabel.images import MAX_FILE_BYTES

    path = make_photo(tmp_path / "padded.jpg", fmt="JPEG")
    with path.open("r+b") as handle:
        handle.truncate(1_500_000_000)  # a valid JPEG followed by 1.5 GB of (sparse) padding
    before = _peak_rss_mb()
    with pytest.raises(ImageError, match=r"file too large \(1.5 GB; the limit is") as err:
        inspect(path)
    assert f"the limit is {MAX_FILE_BYTES / 1e6:.0f} MB" in err.value.reason and "padded.jpg" in str(err.value)
    assert _peak_rss_mb() - before < 100
    with pytest.raises(ImageError, match="file too large"):
        load_array(b"\xff\xd8\xff" + bytes(MAX_FILE_BYTES), 32)  # uploaded bytes too


def test_devices_and_fifos_are_refused_without_reading_them(tmp_path: Path) -> None:
    import os

    error = without_hanging(lambda: inspect("/dev/zero"))
    assert isinstance(error, ImageError) and "a device" in error.reason and "/dev/zero" in str(error)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    error = without_hanging(lambda: load_array(fifo, 32), fifo)
    assert isinstance(error, ImageError) and "named pipe (FIFO)" in error.reason
    error = without_hanging(lambda: inspect(tmp_path))
    assert isinstance(error, ImageError) and "a folder" in error.reason


@pytest.mark.parametrize("size", [(32, 6000), (6000, 32), (1, 3000), (3000, 1)])
def test_square_fits_extreme_aspect_ratios_without_losing_the_photo(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (200, 30, 30))
    out = np.asarray(square(image, 128))
    assert out.shape == (128, 128, 3)
    assert tuple(out[64, 64]) == (200, 30, 30)  # the strip is there, centred, at least a pixel wide


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_strip_shaped_photo_decodes_at_the_cnn_size(tmp_path: Path, fmt: str) -> None:
    for size in ((32, 6000), (6000, 32)):
        path = tmp_path / f"strip{size[0]}.{fmt.lower()}"
        Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
        array = load_array(path, 128)
        assert array.shape == (128, 128, 3)
        assert np.abs(array[64, 64].astype(int) - (200, 30, 30)).max() < 12


def test_iter_batches_decodes_strip_shaped_photos_with_the_rest(tmp_path: Path) -> None:
    good = [make_photo(tmp_path / f"g{i}.png", seed=i, fmt="PNG") for i in range(3)]
    tall = tmp_path / "tall.jpg"
    Image.new("RGB", (32, 6000), (200, 30, 30)).save(tall)
    batches = list(iter_batches([good[0], tall, good[1], good[2]], 128, batch_size=4))
    assert [i for b in batches for i in b.indices] == [0, 1, 2, 3]
    assert not [e for b in batches for e in b.errors]


def test_any_failure_decoding_one_photo_is_that_photos_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shoelabel.images as images

    good = [make_photo(tmp_path / f"g{i}.png", seed=i, fmt="PNG") for i in range(3)]
    odd = tmp_path / "odd.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(odd)
    real_square = images.square

    def failing_square(image: Image.Image, size: int) -> Image.Image:
        if image.getpixel((0, 0)) == (1, 2, 3):  # the odd photo
            raise IndexError("index 0 is out of bounds for axis 1 with size 0")
        return real_square(image, size)

    monkeypatch.setattr(images, "square", failing_square)
    batches = list(iter_batches([good[0], odd, good[1], good[2]], 32, batch_size=4))
    assert [i for b in batches for i in b.indices] == [0, 2, 3]
    [(position, error)] = [e for b in batches for e in b.errors]
    assert position == 1 and isinstance(error, ImageError)
    assert "odd.png" in str(error) and "IndexError: index 0 is out of bounds" in error.reason
    with pytest.raises(ImageError, match=r"odd\.png: cannot decode or resize the image"):
        load_array(odd, 32)


def test_running_out_of_memory_is_not_one_photos_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shoelabel.images as images

    def no_memory(image: Image.Image, size: int) -> Image.Image:
        raise MemoryError

    monkeypatch.setattr(images, "square", no_memory)
    photo = make_photo(tmp_path / "g.png", fmt="PNG")
    with pytest.raises(MemoryError):
        list(iter_batches([photo], 32, batch_size=4))
    with pytest.raises(MemoryError):
        load_array(photo, 32)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_and_cropped_there(
    tmp_path: Path, orientation: int, mode: str
) -> None:
    from PIL import ImageOps

    from shoelabel.images import load_crop

    colours = [(250, 20, 20), (20, 250, 20), (20, 20, 250), (250, 250, 20)]  # quadrants of the stored pixels
    stored = Image.new("RGB", (200, 120))
    for n, colour in enumerate(colours):
        stored.paste(colour, ((n % 2) * 100, (n // 2) * 60, (n % 2) * 100 + 100, (n // 2) * 60 + 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{orientation}.png"
    stored.convert(mode).save(path, exif=exif.tobytes())
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))  # Pillow's own turn
    decoded = np.asarray(open_rgb(path, max_side=400))
    assert decoded.shape == upright.shape
    assert np.abs(decoded.astype(int) - upright).mean() < 2
    height, width = upright.shape[:2]
    for box in [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), (0.0, 0.5, 0.5, 1.0)]:
        inside = upright[int((box[1] + 0.1) * height), int((box[0] + 0.1) * width)]
        crop = load_crop(path, box, 32)
        assert np.abs(crop[16, 16].astype(int) - inside).max() < 8, (box, crop[16, 16], inside)
