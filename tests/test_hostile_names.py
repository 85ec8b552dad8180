"""Names from users render as text on every page: the real app server in headless Chromium, with a catalogue
whose brands, reviewers, file names, folders, job messages and uploads are HTML and Markdown.

On every page the names must appear literally, no element may be made from them (no ``<b>``, no ``<img
src=x>``, no link or picture to example.invalid), no script may run (no ``alert``) and no request may leave
for a host other than the app's own.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine, select, update

from db import session_scope
from db.models import Image, Job, JobKind, JobStatus, LabelClass, Split
from feedback.ingest import ingest_folder
from feedback.reviews import record_review
from tests.app_support import add_round_history, fake_models, pool_ids
from tests.conftest import make_brand_photo
from tests.test_browser import sign_in

pytestmark = pytest.mark.browser

IMG = "<img src=x onerror=alert(1)>"
BOLD = "<b>x</b>"
LINK = "[x](https://example.invalid)"
PICTURE = "![i](https://example.invalid/i.png)"
HOSTILE = [IMG, BOLD, LINK, PICTURE]
#: File names cannot hold "/": these make the same elements from the name alone.
FILES = [
    "<img src=x onerror=alert(2)>.jpg",
    "<b>y<b>.jpg",
    "[y](https:example.invalid).jpg",
    "![j](https:example.invalid).jpg",
    "**z** _w_.jpg",
    "=1+1.jpg",
]
WORD_JOINER = "\u2060"  # what ui.common.plain puts into bare addresses, unseen
FOLDER = ("<b>d<", "b>")  # the pool folder's path reads ".../<b>d</b>/..."
SEEN = """() => ({
  text: document.body.innerText,
  images: [...document.querySelectorAll('img')].map(i => i.getAttribute('src') || '')
      .filter(s => s === 'x' || s.includes('example.invalid')),
  bold: [...document.querySelectorAll('b')].map(b => b.outerHTML),
  links: [...document.querySelectorAll('[href], [src]')]
      .filter(e => (e.getAttribute('href') || e.getAttribute('src') || '').includes('example.invalid'))
      .map(e => e.parentElement.outerHTML.slice(0, 400)),
  handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on')))
      .map(e => e.outerHTML.slice(0, 120)),
})"""


class Watched:
    """A Chromium page whose dialogs (alert, confirm) and requests to other hosts are recorded and stopped."""

    def __init__(self, page: object) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        page.on("dialog", self._dialog)
        page.route("**/*", self._route)

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, route: object) -> None:
        url = route.request.url
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob") or parsed.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def check(self, where: str, *literal: str) -> str:
        """Wait for the page to settle, then check it; returns its text."""
        page = self.page
        page.wait_for_timeout(1500)
        deadline = time.monotonic() + 20
        while page.get_by_test_id("stStatusWidget").get_by_text("Running").count() and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        seen = page.evaluate(SEEN)
        assert seen["images"] == [] and seen["links"] == [], (where, seen["images"], seen["links"])
        assert seen["bold"] == [], (where, seen["bold"])
        assert seen["handlers"] == [], (where, seen["handlers"])
        assert self.dialogs == [], (where, self.dialogs)
        assert self.foreign == [], (where, self.foreign)
        text = seen["text"].replace(WORD_JOINER, "")
        missing = [name for name in literal if name not in text]
        assert missing == [], (where, missing, text[-1500:])
        return text


@pytest.fixture
def watched(page: object) -> Watched:
    return Watched(page)


def hostile_catalogue(engine: Engine, home: Path, root: Path) -> list[int]:
    """Four brands named in HTML and Markdown, pool photos with hostile file names in a hostile folder, two
    conflicts between hostile reviewers, rounds and a failed job whose messages name them; the pool's ids."""
    for b in range(len(HOSTILE)):
        for i in range(4):
            make_brand_photo(root / "brands" / f"brand{b}" / f"{b}_{i}.jpg", b, seed=10 * b + i)
    pool = root.joinpath(*FOLDER)
    for i, name in enumerate(FILES):
        make_brand_photo(pool / name, i % len(HOSTILE), seed=500 + i)
    ingest_folder(root / "brands", engine=engine)
    ingest_folder(pool, engine=engine)
    with session_scope(engine, write=True) as session:
        for b, name in enumerate(HOSTILE):
            session.execute(update(LabelClass).where(LabelClass.name == f"brand{b}").values(name=name))
    fake_models(engine, home, class_names=HOSTILE)
    ids = pool_ids(engine)
    record_review(ids[0], BOLD, "correct", label=IMG, engine=engine)
    record_review(ids[0], LINK, "correct", label=PICTURE, engine=engine)
    record_review(ids[1], IMG, "correct", label=BOLD, engine=engine)
    record_review(ids[1], PICTURE, "correct", label=LINK, engine=engine)
    names = " ".join(HOSTILE)
    add_round_history(engine, message=f"Promoted over {names}.")
    log = home / "logs" / "refresh.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"predicting {names}\n")
    with session_scope(engine, write=True) as session:
        session.add(Job(kind=JobKind.REFRESH, status=JobStatus.FAILED, message=f"{names} broke", log_path=str(log)))
    return ids


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), (seed, 80, 160)).save(out, format="JPEG")
    return out.getvalue()


def test_hostile_names_render_as_text_on_every_page(
    engine: Engine, home: Path, tmp_path: Path, server: str, watched: Watched
) -> None:
    pool = hostile_catalogue(engine, home, tmp_path / "data")
    with session_scope(engine) as session:
        path_of = {i: p for i, p in session.execute(select(Image.id, Image.path).where(Image.split == Split.POOL))}
    page = watched.page

    # Review, as a reviewer with a hostile name: brand buttons, probability bars, the file name, the sidebar
    sign_in(page, server, PICTURE)
    page.get_by_text("Photo #").first.wait_for()
    text = watched.check("review", *HOSTILE, "broke")  # the failed job's notice is on every page
    assert any(Path(path_of[i]).name in text for i in pool[2:]), text  # the photo on screen, by its file name

    # Browse: the grid, a photo's details, and the conflicts
    page.goto(f"{server}/browse")
    page.get_by_text("photo(s) match").wait_for()
    watched.check("browse", "(in conflict)", IMG)
    page.get_by_role("button", name=f"Open #{pool[0]}").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Photo #{pool[0]}", exact=True).wait_for()
    watched.check("details", path_of[pool[0]], BOLD, LINK, IMG, PICTURE)
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    page.get_by_role("tab", name="Conflicts").click()
    page.get_by_text("have reviewers who disagree").wait_for()
    name_box = page.get_by_label("Your name")  # a new browser session: the page asks who settles
    name_box.fill(IMG)
    name_box.press("Enter")
    page.get_by_role("button", name="Settle").first.wait_for()
    watched.check("conflicts", f"{BOLD}: {IMG}", f"{LINK}: {PICTURE}", f"{IMG}: {BOLD}", f"{PICTURE}: {LINK}")

    # Rounds: messages in the table, brand names in the current models' figures
    page.goto(f"{server}/rounds")
    page.get_by_role("heading", name="All rounds").wait_for()
    watched.check("rounds", f"Promoted over {' '.join(HOSTILE)}.")

    # Predict: uploads named in HTML and Markdown, one of them not an image
    page.goto(f"{server}/predict")
    page.locator("input[type=file]").set_input_files(
        [
            {"name": "<img src=x onerror=alert(3)>.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1)},
            {"name": "<b>u<b>[v](https:example.invalid).png", "mimeType": "image/png", "buffer": b"not an image"},
        ]
    )
    page.get_by_role("button", name="Add these photos to the review pool").wait_for()
    watched.check("predict", "<img src=x onerror=alert(3)>.jpg", "<b>u<b>[v](https:example.invalid).png")

    # Import: a manifest path that names HTML is reported as typed
    page.goto(f"{server}/imports")
    box = page.get_by_label("Manifest to import")
    missing = f"/nowhere/{IMG}[y](https:example.invalid).csv"  # no "//": a path keeps one slash
    box.fill(missing)
    box.press("Enter")
    page.get_by_text("Manifest not found").wait_for()
    watched.check("import", missing)

    # Team: every reviewer and brand in the tables and the chart
    page.goto(f"{server}/team")
    page.get_by_role("heading", name="Reviewers", exact=True).wait_for()
    watched.check("team", "Disagreements", *HOSTILE)
