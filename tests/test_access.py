"""Roles checked by the write services themselves (not only by the pages), and the import roots of the app."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import Engine, func, select

from db import session_scope
from db.access import (
    OPERATOR,
    Actor,
    ImportPathRefused,
    ImportRoots,
    Permission,
    PermissionDenied,
    can,
    import_roots,
    require,
)
from db.models import Image, Review, Role
from feedback import manifest as manifest_module
from feedback.ingest import ingest_folder
from feedback.manifest import export_manifest, import_manifest
from feedback.reviews import record_review, undo_last
from feedback.uploads import store_uploads
from modeling.background import start_refresh, start_round
from modeling.jobs import dismiss_job
from shoelabel.settings import get_settings
from shoelabel.settings import import_roots as parse_roots
from tests.conftest import REPO, make_brand_photo

ADMIN = Actor("ann", Role.ADMIN, account_id=1)
REVIEWER = Actor("rita", Role.REVIEWER, account_id=2)
VIEWER = Actor("vic", Role.VIEWER, account_id=3)
LOCAL = Actor("", Role.ADMIN)  # the single user of a local app without accounts


def count(engine: Engine, what: object) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count(what)))


def first_image(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(Image.id).order_by(Image.id))


def test_each_role_may_do_what_the_table_says() -> None:
    assert [p for p in Permission if can(VIEWER, p)] == [Permission.BROWSE]
    assert [p for p in Permission if can(REVIEWER, p)] == [Permission.BROWSE, Permission.REVIEW]
    assert all(can(ADMIN, p) and can(OPERATOR, p) and can(LOCAL, p) for p in Permission)
    assert not can(None, Permission.BROWSE)
    with pytest.raises(PermissionDenied, match=r"Your role \(viewer\) does not allow you to review photos"):
        require(VIEWER, Permission.REVIEW)
    with pytest.raises(PermissionDenied, match="Sign in"):
        require(None, Permission.BROWSE)


def test_a_reviewer_calling_admin_services_directly_is_refused(
    engine: Engine, brand_folder: Path, tmp_path: Path
) -> None:
    ingest_folder(brand_folder, engine=engine)  # the operator, at a terminal
    images = count(engine, Image.id)
    manifest = tmp_path / "labels.csv"
    export_manifest(manifest, engine=engine)
    photo = make_brand_photo(tmp_path / "upload.jpg", 0, seed=999)
    refused = [
        lambda: ingest_folder(brand_folder, engine=engine, actor=REVIEWER),
        lambda: import_manifest(manifest, engine=engine, actor=REVIEWER),
        lambda: store_uploads([("upload.jpg", photo.read_bytes())], engine=engine, actor=REVIEWER),
        lambda: start_round("cnn", engine=engine, actor=REVIEWER),
        lambda: start_refresh(engine=engine, actor=REVIEWER),
        lambda: dismiss_job(engine, 1, actor=REVIEWER),
        lambda: record_review(
            first_image(engine), "rita", "correct", label="bolt", resolves_conflict=True, engine=engine, actor=REVIEWER
        ),
    ]
    for call in refused:
        with pytest.raises(PermissionDenied, match=r"Your role \(reviewer\) does not allow"):
            call()
    assert count(engine, Image.id) == images and count(engine, Review.id) == 0


def test_reviewers_review_as_themselves_and_viewers_not_at_all(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    image = first_image(engine)
    review = record_review(image, "rita", "correct", label="bolt", engine=engine, actor=REVIEWER)
    with pytest.raises(PermissionDenied, match="signed-in account"):
        record_review(image, "somebody else", "skip", engine=engine, actor=REVIEWER)
    with pytest.raises(PermissionDenied, match=r"\(viewer\)"):
        record_review(image, "vic", "skip", engine=engine, actor=VIEWER)
    with pytest.raises(PermissionDenied, match=r"\(viewer\)"):
        undo_last("vic", engine=engine, actor=VIEWER)
    with pytest.raises(PermissionDenied, match="signed-in account"):
        undo_last("ann", engine=engine, actor=REVIEWER)
    assert undo_last("rita", engine=engine, actor=REVIEWER).id == review
    record_review(image, "ann", "correct", label="acme", resolves_conflict=True, engine=engine, actor=ADMIN)
    record_review(image, "whoever", "skip", engine=engine, actor=LOCAL)  # a local single user names themselves


def test_the_app_code_passes_the_actor_to_every_write_service() -> None:
    """The pages call each write service with ``actor=``; without it a service would act as the operator."""
    services = {"record_review", "undo_last", "ingest_folder", "import_manifest", "store_uploads",
                "start_round", "start_refresh", "dismiss_job", "add_account", "reset_password", "unlock"}  # fmt: skip
    missing, seen = [], set()
    for path in [REPO / "streamlit_app.py", *(REPO / "ui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in services:
                    seen.add(name)
                    if "actor" not in {k.arg for k in node.keywords}:
                        missing.append(f"{path.name}:{node.lineno} {name}")
    assert missing == []
    assert seen == services


# --------------------------------------------------------------------------- import roots


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """An import root holding photos, and a private folder beside it."""
    root, private = tmp_path / "imports", tmp_path / "private"
    for i in range(3):
        make_brand_photo(root / "shoes" / f"p{i}.jpg", i, seed=i)
        make_brand_photo(private / f"secret{i}.jpg", i, seed=50 + i)
    return root, private


def test_paths_outside_the_roots_are_refused_without_touching_the_disk(roots: tuple[Path, Path]) -> None:
    root, private = roots
    allowed = ImportRoots((str(root),))
    outside = [
        str(private),  # exists
        str(private / "missing"),  # does not
        f"{root}/../private",  # .. taken out lexically
        f"{root}/shoes/../../private/secret0.jpg",
        "relative/path",
        "~/photos",
        str(root) + "-sibling",
        "/etc/passwd",
        f"{root}/\0x",
    ]
    messages = set()
    no_disk = AssertionError("the disk was read")
    with mock.patch("os.stat", side_effect=no_disk), mock.patch("os.lstat", side_effect=no_disk):
        for path in outside:
            with pytest.raises(ImportPathRefused) as refused:
                allowed.check(path)
            messages.add(str(refused.value))
    assert len(messages) == 1  # one message, whatever the path
    [message] = messages
    assert "secret" not in message and "private" not in message
    assert allowed.check(f"{root}/shoes/./") == (root / "shoes").resolve()


def test_a_symlink_inside_a_root_that_leads_out_is_refused(roots: tuple[Path, Path]) -> None:
    root, private = roots
    (root / "link").symlink_to(private)
    (root / "inner").symlink_to(root / "shoes")
    allowed = ImportRoots((str(root),))
    with pytest.raises(ImportPathRefused) as refused:
        allowed.check(root / "link")
    with pytest.raises(ImportPathRefused) as missing:
        allowed.check(private / "nothing-here")
    assert str(refused.value) == str(missing.value)
    assert allowed.check(root / "inner") == (root / "shoes").resolve()


def test_roots_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOELABEL_IMPORT_ROOTS", f"{tmp_path}/a/../b{os.pathsep}{os.pathsep} {tmp_path}/c ")
    assert get_settings().import_roots == (str(tmp_path / "b"), str(tmp_path / "c"))
    assert parse_roots("") == ()


def test_who_may_import_from_where(monkeypatch: pytest.MonkeyPatch, roots: tuple[Path, Path]) -> None:
    root, private = roots
    monkeypatch.delenv("SHOELABEL_IMPORT_ROOTS", raising=False)
    assert import_roots(LOCAL).allows(private)  # a local single-user app without roots: any path, as before
    assert import_roots(OPERATOR).allows(private)  # the command lines
    with pytest.raises(ImportPathRefused, match="SHOELABEL_IMPORT_ROOTS, and none is set"):
        import_roots(ADMIN)  # a team server without roots: none
    with pytest.raises(PermissionDenied, match=r"\(reviewer\)"):
        import_roots(REVIEWER)
    monkeypatch.setenv("SHOELABEL_IMPORT_ROOTS", str(root))
    for actor in (LOCAL, ADMIN):
        assert import_roots(actor).allows(root / "shoes") and not import_roots(actor).allows(private)
    assert import_roots(OPERATOR).allows(private)


def test_ingest_and_manifest_import_from_the_app_stay_inside_the_roots(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, roots: tuple[Path, Path], tmp_path: Path
) -> None:
    root, private = roots
    monkeypatch.setenv("SHOELABEL_IMPORT_ROOTS", str(root))
    with pytest.raises(ImportPathRefused) as refused:
        ingest_folder(private, engine=engine, actor=ADMIN)
    assert "secret" not in str(refused.value) and count(engine, Image.id) == 0
    with pytest.raises(ImportPathRefused):
        import_manifest(private / "labels.csv", engine=engine, actor=ADMIN)

    # a manifest inside the roots that names photos outside them: those rows are skipped, unread
    manifest = root / "labels.csv"
    rows = [f"{private / 'secret0.jpg'},acme", "shoes/p1.jpg,bolt", "../private/secret1.jpg,bolt"]
    manifest.write_text("path,brand\n" + "\n".join(rows) + "\n")
    with mock.patch("feedback.manifest.inspect", wraps=manifest_module.inspect) as read:
        report = import_manifest(manifest, engine=engine, actor=ADMIN)
    assert report.added == 1
    assert [reason for _, reason in report.skipped] == ["outside the folders this server imports from"] * 2
    assert all("secret" not in str(call.args[0]) for call in read.call_args_list)

    report = ingest_folder(root / "shoes", engine=engine, actor=ADMIN)
    assert report.added == 2 and count(engine, Image.id) == 3
