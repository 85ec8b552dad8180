"""Uploaded photos: stored once by content, added to the review pool, bad files refused with nothing stored."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select

from db import session_scope
from db.models import Image, Prediction, Split
from feedback.ingest import ingest_folder
from feedback.queue import next_items
from feedback.uploads import store_upload, store_uploads
from modeling.answers import ModelAnswer
from modeling.app_services import store_upload_predictions
from shoelabel.images import ImageError
from tests.app_support import fake_models


def photo(seed: int = 0, fmt: str = "JPEG", size: tuple[int, int] = (80, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def catalogue_images(engine: Engine) -> list[Image]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Image).order_by(Image.id)))


def upload_files(home: Path) -> list[Path]:
    folder = home / "uploads"
    return sorted(p for p in folder.iterdir()) if folder.is_dir() else []


def test_an_upload_is_stored_by_content_hash_and_joins_the_pool(engine: Engine, home: Path, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0, engine=engine)
    data = photo(1)
    stored = store_upload("IMG_0001.JPG", data, engine=engine)
    sha = hashlib.sha256(data).hexdigest()
    assert stored.added and stored.sha256 == sha
    assert Path(stored.path) == home / "uploads" / f"{sha}.jpg"
    assert Path(stored.path).read_bytes() == data
    image = catalogue_images(engine)[-1]
    assert (image.id, image.split, image.source, image.sha256) == (
        stored.image_id,
        Split.POOL,
        "upload:IMG_0001.JPG",
        sha,
    )
    assert (image.width, image.height, image.format) == (80, 64, "jpeg")
    [item] = next_items("ann", "s1", scope="unlabelled", k=2, engine=engine)
    assert item.image_id == image.id


def test_the_extension_follows_the_content_not_the_name(engine: Engine) -> None:
    stored = store_upload("looks-like.jpg", photo(2, fmt="PNG"), engine=engine)
    assert stored.path.endswith(".png")


def test_the_same_photo_twice_is_stored_once(engine: Engine, home: Path) -> None:
    data = photo(3)
    first = store_upload("a.jpg", data, engine=engine)
    again = store_upload("copy of a.jpg", data, engine=engine)
    assert first.added and not again.added
    assert again.image_id == first.image_id
    assert len(catalogue_images(engine)) == 1
    assert len(upload_files(home)) == 1


def test_a_photo_already_ingested_is_not_stored_again(engine: Engine, home: Path, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    existing = brand_folder / "acme" / "acme_0.jpg"
    stored = store_upload("mine.jpg", existing.read_bytes(), engine=engine)
    assert not stored.added and stored.path == str(existing)
    assert len(catalogue_images(engine)) == 36
    assert upload_files(home) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"%PDF-1.4 not a photo", "not an image"),
        (photo(4)[:200], "truncated"),
        (photo(5, size=(16, 16)), "too small"),
    ],
)
def test_a_bad_upload_is_rejected_with_its_name_and_nothing_is_stored(
    engine: Engine, home: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(ImageError, match=reason) as caught:
        store_upload("holiday.jpg", data, engine=engine)
    assert caught.value.name == "holiday.jpg"
    assert str(caught.value).startswith("holiday.jpg: ")
    assert catalogue_images(engine) == []
    assert upload_files(home) == []


def test_a_batch_reports_what_was_added_found_and_rejected(engine: Engine, home: Path) -> None:
    good, other = photo(6), photo(7, fmt="WEBP")
    report = store_uploads(
        [("good.jpg", good), ("notes.txt", b"shopping list"), ("other.webp", other), ("good again.jpg", good)],
        engine=engine,
    )
    assert [s.name for s in report.added] == ["good.jpg", "other.webp"]
    assert [s.name for s in report.already_stored] == ["good again.jpg"]
    assert [(e.name, e.reason) for e in report.rejected] == [
        ("notes.txt", "not an image (content is not JPEG, PNG, WebP or BMP)")
    ]
    summary = report.summary()
    assert "Added to the review pool: 2" in summary and "notes.txt: not an image" in summary
    assert len(catalogue_images(engine)) == 2 and len(upload_files(home)) == 2


def test_predictions_made_for_uploads_are_kept(engine: Engine, home: Path, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    handles = fake_models(engine, home)
    stored = store_upload("new.jpg", photo(8), engine=engine)
    answers = {
        stored.image_id: {
            arch: ModelAnswer(arch, h.id, {"acme": 0.1, "bolt": 0.2, "crest": 0.7}) for arch, h in handles.items()
        }
    }
    assert store_upload_predictions(handles, answers, engine=engine) == 2
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Prediction).where(Prediction.image_id == stored.image_id)))
        assert sorted(r.label_class.name for r in rows) == ["crest", "crest"]
        assert session.scalar(select(func.count(Prediction.id))) == 2 * 36 + 2
