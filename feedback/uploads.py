"""Photos uploaded in the app: kept under ``<home>/uploads/<sha256>.<ext>`` and added to the review pool.

Uploads are checked by content (:func:`shoelabel.images.inspect`) before anything
is written, so a bad file leaves no trace; the same photo uploaded twice, or a
photo already in the catalogue, is stored once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, Permission, require
from db.catalog import image_by_hash
from feedback.ingest import new_image
from shoelabel.images import ImageError, ImageInfo, inspect_upload
from shoelabel.settings import get_settings

EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp"}
SOURCE_PREFIX = "upload:"


@dataclass(frozen=True)
class StoredUpload:
    name: str  # the file name the user uploaded
    image_id: int
    sha256: str
    path: str
    added: bool  # False when the same photo was in the catalogue already


@dataclass
class UploadReport:
    stored: list[StoredUpload] = field(default_factory=list)
    rejected: list[ImageError] = field(default_factory=list)

    @property
    def added(self) -> list[StoredUpload]:
        return [s for s in self.stored if s.added]

    @property
    def already_stored(self) -> list[StoredUpload]:
        return [s for s in self.stored if not s.added]

    def summary(self) -> str:
        lines = [f"Added to the review pool: {len(self.added)}"]
        lines += [f"  {s.name} (image #{s.image_id})" for s in self.added]
        lines.append(f"Already in the catalogue: {len(self.already_stored)}")
        lines += [f"  {s.name} is image #{s.image_id}" for s in self.already_stored]
        lines.append(f"Rejected: {len(self.rejected)}")
        lines += [f"  {e.name}: {e.reason}" for e in self.rejected]
        return "\n".join(lines)


def upload_path(info: ImageInfo) -> Path:
    return get_settings().uploads_dir / f"{info.sha256}{EXTENSIONS.get(info.format, '.' + info.format)}"


def _write_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it is there; True when this call wrote it."""
    if path.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def store_upload(name: str, data: bytes, *, engine: Engine | None = None) -> StoredUpload:
    """Keep one uploaded photo and add it to the review pool (or find it if it is stored already).

    Raises :class:`ImageError` for a file that is not a usable photo; nothing is written then.
    """
    info = inspect_upload(name, data)
    engine = engine or get_engine()
    with session_scope(engine) as session:
        existing = image_by_hash(session, info.sha256)
        if existing is not None:
            return StoredUpload(name, existing.id, info.sha256, existing.path, added=False)
    path = upload_path(info)
    wrote = _write_once(path, bytes(data))
    try:
        with session_scope(engine, write=True) as session:
            existing = image_by_hash(session, info.sha256)  # another tab may have stored it meanwhile
            if existing is not None:
                return StoredUpload(name, existing.id, info.sha256, existing.path, added=False)
            image = new_image(session, info, path, source=f"{SOURCE_PREFIX}{name}")
            session.flush()
            return StoredUpload(name, image.id, info.sha256, str(path), added=True)
    except BaseException:
        if wrote:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def store_uploads(
    files: Iterable[tuple[str, bytes]], *, engine: Engine | None = None, actor: Actor = OPERATOR
) -> UploadReport:
    """Store several uploads (``actor`` must be allowed to import); a bad file is reported in
    :attr:`UploadReport.rejected`, never raised."""
    require(actor, Permission.IMPORT)
    report = UploadReport()
    for name, data in files:
        try:
            report.stored.append(store_upload(name, data, engine=engine))
        except ImageError as exc:
            report.rejected.append(exc)
    return report
