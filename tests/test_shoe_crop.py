"""Prediction that looks at the shoe: the class activation map's box, the crop cut from the full photo, and
InceptionV3's second look at large photos only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeling.shoe_crop import Box, class_activation_map, is_large, shoe_box
from shoelabel.images import load_crop, upright_size


def band_map() -> np.ndarray:
    """An 8x8 map over the fitted square, strong in rows 3-4 and columns 2-5."""
    cam = np.zeros((8, 8), np.float32)
    cam[3:5, 2:6] = 1.0
    return cam


def test_the_box_is_where_the_map_points_in_the_photo_s_own_coordinates() -> None:
    # a 1280x1600 portrait fills the middle 0.8 of the square's width
    box = shoe_box(band_map(), 1280, 1600)
    assert box is not None
    assert 0.3 < box.top < 0.4 and 0.6 < box.bottom < 0.7  # rows 3-4 of 8, with a margin
    # columns 2-5 of the square are 0.1875-0.8125 of the photo (0.1 of the square is padding each side)
    assert 0.0 < box.left < 0.1875 and 0.8125 < box.right < 1.0
    assert box.area < 0.35
    assert shoe_box(np.ones((8, 8)), 1280, 1600) is None  # a flat map points nowhere
    everywhere = np.ones((8, 8))
    everywhere[0, 0] = 0.0
    assert shoe_box(everywhere, 1280, 1600) is None  # a box over most of the photo adds nothing


def test_the_map_is_the_head_s_class_score_at_each_place() -> None:
    rng = np.random.default_rng(0)
    low, top = rng.random((8, 8, 5)), rng.random((8, 8, 7))
    kernel = rng.normal(size=(12, 3))
    cam = class_activation_map([low, top], [kernel[:5], kernel[5:]], 2)
    pooled = np.concatenate([low.mean(axis=(0, 1)), top.mean(axis=(0, 1))])
    assert cam.mean() == pytest.approx(pooled @ kernel[:, 2], rel=1e-5)  # averaging the map gives the logit


def test_only_large_photos_get_a_second_look() -> None:
    assert is_large(1280, 1600, 299) and is_large(600, 400, 299)
    assert not is_large(240, 240, 299) and not is_large(512, 512, 299)


def test_a_crop_is_cut_from_the_upright_photo_at_full_resolution(tmp_path: Path) -> None:
    pixels = np.full((1600, 1200, 3), 230, np.uint8)
    pixels[1000:1200, 300:900] = (200, 20, 20)  # the shoe: a red band low in the photo
    photo = tmp_path / "studio.png"  # a JPEG named .png, as shops save them
    Image.fromarray(pixels).save(photo, format="JPEG", quality=95)
    assert upright_size(photo) == (1200, 1600)
    crop = load_crop(photo, (0.25, 0.625, 0.75, 0.75), 64)
    assert crop.shape == (64, 64, 3)
    red = (crop[..., 0] > 150) & (crop[..., 1] < 80)
    assert red[16:48].mean() > 0.9  # the band fills the crop's middle rows (padded above and below)

    rotated = tmp_path / "phone.jpg"  # stored landscape, EXIF says turn it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(pixels, 1))).save(rotated, format="JPEG", exif=exif)
    assert upright_size(rotated) == (1200, 1600)
    red = load_crop(rotated, (0.25, 0.625, 0.75, 0.75), 64)
    assert ((red[..., 0] > 150) & (red[..., 1] < 80))[16:48].mean() > 0.9


@pytest.mark.slow
def test_inception_looks_again_at_the_shoe_in_a_large_photo_and_caches_the_crop(tmp_path: Path) -> None:
    from modeling.architectures import build_inception, split_inception
    from modeling.feature_cache import FeatureCache
    from modeling.predict import FixedBatches, ShoeLook
    from shoelabel.images import load_array

    size = 139  # the smallest input with a 3x3 map after mixed8
    model = build_inception(3, weights=None, input_size=size)
    lower, upper = (FixedBatches(part, 4) for part in split_inception(model))
    look = ShoeLook(model, lower, upper, size)
    rng = np.random.default_rng(1)
    large, small = tmp_path / "large.jpg", tmp_path / "small.jpg"
    pixels = np.full((800, 600, 3), 240, np.uint8)
    pixels[450:560, 100:500] = rng.integers(0, 255, (110, 400, 3))
    Image.fromarray(pixels).save(large, quality=95)
    Image.fromarray(pixels).resize((120, 160)).save(small, quality=95)
    paths = [str(large), str(small)]
    cut = lower.predict_on_batch(np.stack([load_array(p, size) for p in paths]))
    probs = upper.predict_on_batch(cut)
    look.boxes = lambda paths, cut, probs: {0: Box(0.1, 0.5, 0.9, 0.75)}  # whatever an untrained map says
    cache = FeatureCache(tmp_path / "cache", "crops")
    refined = look.refine(paths, cut, probs, cache, ["a" * 64, "b" * 64])
    np.testing.assert_allclose(refined[1], probs[1])  # the small photo: seen once
    crop_probs = upper.predict_on_batch(lower.predict_on_batch(load_crop(large, (0.1, 0.5, 0.9, 0.75), size)[None]))
    np.testing.assert_allclose(refined[0], (probs[0] + crop_probs[0]) / 2, rtol=1e-4, atol=1e-5)
    assert cache.has("a" * 64 + "-3-16-29-24")  # kept, keyed by the photo and the box
    lower.model = None  # a second look at the same box runs no lower network
    np.testing.assert_allclose(look.refine(paths, cut, probs, cache, ["a" * 64, "b" * 64]), refined, rtol=1e-5)
