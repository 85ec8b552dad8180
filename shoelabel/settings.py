"""Runtime settings, read from environment variables.

| variable                      | default                              |
|-------------------------------|--------------------------------------|
| ``SHOELABEL_HOME``            | ``./.shoelabel``                     |
| ``SHOELABEL_DB``              | ``sqlite:///<home>/shoelabel.db``    |
| ``SHOELABEL_INCEPTION_WEIGHTS``| ``imagenet`` (or a path to an .h5)  |
| ``SHOELABEL_BUSY_TIMEOUT``    | ``30`` (seconds a writer waits for a lock; read in :mod:`db.engine`) |
| ``SHOELABEL_IMPORT_ROOTS``    | none (folders the app imports from, ``os.pathsep``-separated; :mod:`db.access`) |
| ``SHOELABEL_REVIEW_HOLDOUT``  | ``0.15`` (share of answered review-pool photos held out; :mod:`db.evaluation_part`) |
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shoelabel.errors import UserError

IMAGENET = "imagenet"


class SettingsError(UserError, ValueError):
    """A setting has a value that cannot work."""


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    inception_weights: str
    import_roots: tuple[str, ...] = ()  # absolute, normalised without touching the disk; () when not set
    review_holdout: float = 0.15  # share of the review pool's answered photos that go to the evaluation part

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    def inception_weights_source(self) -> str:
        """``"imagenet"`` or an existing weights path; a clear error otherwise."""
        if self.inception_weights == IMAGENET:
            return IMAGENET
        path = Path(self.inception_weights).expanduser()
        if not path.is_file():
            raise SettingsError(
                f"InceptionV3 weights file not found: {path}. Set SHOELABEL_INCEPTION_WEIGHTS "
                "to the path of inception_v3_imagenet_notop.h5, or to 'imagenet' to let Keras "
                "download the ImageNet weights (needs network access once)."
            )
        return str(path.resolve())

    def environment(self) -> dict[str, str]:
        """These settings as environment variables with absolute paths, for a child process
        that may run in another working directory."""
        weights = self.inception_weights
        if weights != IMAGENET and Path(weights).expanduser().exists():
            weights = str(Path(weights).expanduser().resolve())
        return {
            "SHOELABEL_HOME": str(self.home),
            "SHOELABEL_DB": absolute_sqlite_url(self.db_url),
            "SHOELABEL_INCEPTION_WEIGHTS": weights,
        }


def absolute_sqlite_url(url: str) -> str:
    """``url`` with a relative SQLite file made absolute (other URLs unchanged)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str(Path(database).resolve())).render_as_string(hide_password=False)


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    home = Path(os.environ.get("SHOELABEL_HOME", ".shoelabel")).expanduser().resolve()
    db_url = os.environ.get("SHOELABEL_DB") or f"sqlite:///{home / 'shoelabel.db'}"
    weights = os.environ.get("SHOELABEL_INCEPTION_WEIGHTS", IMAGENET).strip() or IMAGENET
    return Settings(
        home=home,
        db_url=db_url,
        inception_weights=weights,
        import_roots=import_roots(os.environ.get("SHOELABEL_IMPORT_ROOTS", "")),
        review_holdout=share_setting("SHOELABEL_REVIEW_HOLDOUT", 0.15),
    )


def number_setting(name: str, default: float, valid: Callable[[float], bool], advice: str) -> float:
    """The number in the environment variable ``name`` (``default`` when unset); a :class:`SettingsError`
    quoting the value, followed by ``advice``, when it is not a number or not ``valid``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan  # fails every comparison
    if not valid(value):
        raise SettingsError(f"{name}={raw!r}{advice}")
    return value


def share_setting(name: str, default: float) -> float:
    """A share between 0 and 0.5 from the environment variable ``name``."""
    return number_setting(
        name, default, lambda v: 0.0 <= v <= 0.5, ": give a share between 0 and 0.5 (e.g. 0.15 for 15%)."
    )


def import_roots(value: str) -> tuple[str, ...]:
    """The folders of ``SHOELABEL_IMPORT_ROOTS`` (separated by ``os.pathsep``), each made absolute and
    normalised lexically (``..`` taken out without reading the disk); empty parts are ignored."""
    roots = []
    for part in value.split(os.pathsep):
        part = part.strip()
        if part:
            root = os.path.normpath(os.path.abspath(os.path.expanduser(part)))
            if root not in roots:
                roots.append(root)
    return tuple(roots)
