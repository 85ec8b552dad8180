"""Shared fixtures: an isolated home folder and database per test (``db_engine``: on SQLite and
on the PostgreSQL server named by SHOELABEL_TEST_POSTGRES), synthetic photos, and the real
photos and weights in ``../shared`` (tests that need them skip clearly when they are absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("SHOELABEL_SHARED", REPO.parent / "shared")).resolve()


def shared_photos() -> Path:
    return shared_dir() / "data" / "shoes-train"


def shared_weights() -> Path:
    return shared_dir() / "weights" / "inception_v3_imagenet_notop.h5"


@pytest.fixture(autouse=True)
def repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app imports its ``ui`` package from the repository root, as ``streamlit run`` allows."""
    monkeypatch.syspath_prepend(str(REPO))


def _shared_or_skip(path: Path, found: bool, what: str) -> Path:
    """``path`` of the shared folder; the test is skipped, naming ``what`` and where it was looked for, if not
    ``found``."""
    if not found:
        pytest.skip(f"{what} not found at {path}; set SHOELABEL_SHARED to the shared folder")
    return path


@pytest.fixture
def photos_dir() -> Path:
    path = shared_photos()
    return _shared_or_skip(path, path.is_dir(), "real shoe photos")


@pytest.fixture
def weights_path() -> Path:
    path = shared_weights()
    return _shared_or_skip(path, path.is_file(), "InceptionV3 weights")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SHOELABEL_HOME (database, models, caches) for one test."""
    from db import dispose_engines

    home = tmp_path / "home"
    monkeypatch.setenv("SHOELABEL_HOME", str(home))
    monkeypatch.delenv("SHOELABEL_DB", raising=False)
    if shared_weights().is_file():
        monkeypatch.setenv("SHOELABEL_INCEPTION_WEIGHTS", str(shared_weights()))
    dispose_engines()
    yield home
    dispose_engines()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per run: tests start from a copy (a migration
    from nothing costs about a second; a copy, milliseconds)."""
    from db.connect import create_db_engine
    from db.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "shoelabel.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _sqlite_from_template(template: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


@pytest.fixture
def engine(home: Path, migrated_sqlite: Path):
    from db import get_engine

    _sqlite_from_template(migrated_sqlite, home / "shoelabel.db")
    return get_engine()


# --------------------------------------------------------------------------- both database backends

POSTGRES_ENV = "SHOELABEL_TEST_POSTGRES"


class PostgresServer:
    """A PostgreSQL server the tests may create databases on (its role needs CREATEDB).

    Each test gets a database of its own, copied from a template migrated once per run, so a
    migrated database costs one ``CREATE DATABASE`` and the tests never see each other's rows.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.template: str | None = None

    def execute(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(sql))

    def url_of(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    @contextmanager
    def database(self, *, migrated: bool = True) -> Iterator[str]:
        """The URL of a new database, migrated to head or empty; dropped afterwards."""
        name = f"shoelabel_test_{uuid.uuid4().hex[:16]}"
        template = f" TEMPLATE {self.migrated_template()}" if migrated else ""
        self.execute(f"CREATE DATABASE {name}{template}")
        try:
            yield self.url_of(name)
        finally:
            from db import dispose_engines

            dispose_engines()
            self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def migrated_template(self) -> str:
        if self.template is None:
            from db.connect import create_db_engine
            from db.migrate import upgrade

            name = f"shoelabel_template_{uuid.uuid4().hex[:16]}"
            self.execute(f"CREATE DATABASE {name}")
            self.template = name  # dropped by close(), even if migrating fails
            engine = create_db_engine(self.url_of(name))
            upgrade(engine)
            engine.dispose()  # a template cannot be copied while someone is connected to it
        return self.template

    def close(self) -> None:
        if self.template is not None:
            self.execute(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The PostgreSQL server named by SHOELABEL_TEST_POSTGRES; the test is skipped without one."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(
            f"no PostgreSQL server: set {POSTGRES_ENV}=postgresql+psycopg://USER@HOST/DATABASE (a role that may "
            "create databases), or install postgresql and start one with: bash .ci/postgres-server DIR"
        )
    server = PostgresServer(url)
    try:
        server.execute("SELECT 1")
    except Exception as exc:
        pytest.fail(f"{POSTGRES_ENV}={url!r} cannot be reached: {exc}")
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """The URL of a new, empty database (no tables), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{home.parent / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.database(migrated=False) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An empty database migrated to head, on each backend: ``db.get_engine()`` is this same engine.

    SHOELABEL_DB points at it (and SHOELABEL_HOME at the test's folder, see ``home``), so every
    service, and every command a test starts, uses it.
    """
    from db import get_engine

    if request.param == "sqlite":
        _sqlite_from_template(request.getfixturevalue("migrated_sqlite"), home / "shoelabel.db")
        monkeypatch.setenv("SHOELABEL_DB", f"sqlite:///{home / 'shoelabel.db'}")
        yield get_engine()
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.database() as url:
        monkeypatch.setenv("SHOELABEL_DB", url)
        yield get_engine()


def make_photo(
    path: Path, size: tuple[int, int] = (96, 96), seed: int = 0, fmt: str | None = None, mode: str = "RGB"
) -> Path:
    """A small synthetic photo with some structure (distinct per seed)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    pixels = np.stack([(base[c] + (x * (c + 1) + y * (3 - c)) * (seed % 7 + 1)) % 256 for c in range(3)], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def make_brand_photo(path: Path, brand_index: int, seed: int, size: int = 64) -> Path:
    """A synthetic photo whose brand is learnable: each brand has its own colour and stripe."""
    rng = np.random.default_rng(seed)
    palette = np.array([[220, 40, 40], [40, 200, 60], [40, 60, 220], [200, 200, 40], [160, 40, 200]])
    pixels = np.clip(palette[brand_index % len(palette)] + rng.normal(0, 25, (size, size, 3)), 0, 255)
    stripe = slice(brand_index * 8 % size, brand_index * 8 % size + 8)
    pixels[stripe, :, :] = 255 - pixels[stripe, :, :]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


def make_brand_folder(root: Path, brands: Sequence[str], per_brand: int, seed_step: int, size: int = 64) -> Path:
    """A labelled folder: ``per_brand`` synthetic photos ``<brand>_<i>.jpg`` in a subfolder per brand; photo
    ``i`` of the ``b``-th brand is drawn with seed ``seed_step * b + i``."""
    for b, brand in enumerate(brands):
        for i in range(per_brand):
            make_brand_photo(root / brand / f"{brand}_{i}.jpg", b, seed=seed_step * b + i, size=size)
    return root


@pytest.fixture
def catalogue(engine, home: Path, brand_folder: Path, pool_folder: Path):
    """The labelled and pool fixtures ingested, with fake current models and their predictions."""
    from tests.app_support import seed_catalogue

    seed_catalogue(engine, home, brand_folder, pool_folder)
    return engine


@pytest.fixture
def pool(engine, brand_folder: Path, pool_folder: Path) -> list[int]:
    """The labelled and the pool fixtures ingested into ``engine``; the pool photos' ids, oldest first. (A
    module whose ``engine`` fixture returns ``db_engine`` gets it on SQLite and on PostgreSQL.)"""
    from sqlalchemy import select

    from db import session_scope
    from db.models import Image, Split
    from feedback.ingest import ingest_folder

    ingest_folder(brand_folder)
    ingest_folder(pool_folder)
    with session_scope(engine) as session:
        return list(session.scalars(select(Image.id).where(Image.split == Split.POOL).order_by(Image.id)))


@pytest.fixture
def brand_folder(tmp_path: Path) -> Path:
    """A labelled folder: three brands, 12 synthetic photos each."""
    return make_brand_folder(tmp_path / "brands", ["acme", "bolt", "crest"], per_brand=12, seed_step=100)


@pytest.fixture
def pool_folder(tmp_path: Path) -> Path:
    """An unlabelled flat folder of 8 synthetic photos."""
    root = tmp_path / "pool"
    for i in range(8):
        make_brand_photo(root / f"new_{i}.jpg", i % 3, seed=10_000 + i)
    return root


def count_rows(engine: Engine, column: object) -> int:
    """How many rows of ``column``'s table hold a value in it (``COUNT(column)``)."""
    from sqlalchemy import func, select

    from db import session_scope

    with session_scope(engine) as session:
        return session.scalar(select(func.count(column)))


#: Runs ``main(sys.argv[1:])`` of the module named ``{module}``, committing every 10 photos, and kills its own
#: process (SIGKILL) once the third chunk is written but before it is committed.
KILLED_AT_THIRD_CHUNK = """
import os, signal, sys
import {module} as target

target.COMMIT_EVERY = 10
real_store, chunks = target._store_chunk, []

def store_then_die(session, state, chunk):
    real_store(session, state, chunk)
    chunks.append(chunk)
    if len(chunks) == 3:  # the third chunk is written, not committed
        os.kill(os.getpid(), signal.SIGKILL)

target._store_chunk = store_then_die
target.main(sys.argv[1:])
"""


def killed_at_third_chunk(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``module``'s command run with ``args`` in a new process, killed as :data:`KILLED_AT_THIRD_CHUNK` says."""
    script = KILLED_AT_THIRD_CHUNK.format(module=module)
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True)


def without_hanging(call, fifo: Path | None = None) -> BaseException | None:
    """Run ``call`` in a thread and return what it raised (None if nothing); fail, and unblock it, if it
    has not returned within 10 s (a reader blocked on ``fifo`` gets end-of-file)."""
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"{call} blocked")
    return outcome[0]


# --------------------------------------------------------------------------- headless Chromium and the real app

CHROMIUM = Path(os.environ.get("SHOELABEL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def playwright_api() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or set SHOELABEL_CHROMIUM"
        )
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture
def page(playwright_api: object) -> Iterator[object]:
    """A page of headless Chromium, closed after the test."""
    browser = playwright_api.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        page.set_default_timeout(30_000)
        yield page
    finally:
        browser.close()


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` on a free port, on the test's home folder."""
    from tests.app_support import AppServerError, running_app

    try:
        with running_app(home, log=home.parent / "server.log") as url:
            yield url
    except AppServerError as exc:
        pytest.fail(str(exc))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A browser test is a slow one: the fast lane (``pytest -m "not slow"``) leaves Chromium out."""
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)


def conflicting_answers(engine: Engine, image_id: int, first: str, second: str) -> None:
    """``first`` answers acme and ``second`` crest for the photo: a conflict an admin settles."""
    from feedback.reviews import record_review

    record_review(image_id, first, "correct", label="acme", engine=engine)
    record_review(image_id, second, "correct", label="crest", engine=engine)
