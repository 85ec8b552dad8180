"""Settings from the environment, and the absolute form handed to background processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoelabel.settings import IMAGENET, SettingsError, absolute_sqlite_url, get_settings


def test_defaults_live_under_a_home_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOELABEL_HOME", "SHOELABEL_DB", "SHOELABEL_INCEPTION_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = get_settings()
    assert settings.home == tmp_path / ".shoelabel"
    assert settings.db_url == f"sqlite:///{tmp_path / '.shoelabel' / 'shoelabel.db'}"
    assert settings.inception_weights == IMAGENET and settings.inception_weights_source() == IMAGENET


def test_a_missing_weights_file_is_named_with_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOELABEL_INCEPTION_WEIGHTS", str(tmp_path / "nope.h5"))
    with pytest.raises(SettingsError, match=r"nope\.h5.*SHOELABEL_INCEPTION_WEIGHTS"):
        get_settings().inception_weights_source()


def test_background_processes_get_absolute_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w.h5").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOELABEL_HOME", "rel-home")
    monkeypatch.setenv("SHOELABEL_DB", "sqlite:///rel.db")
    monkeypatch.setenv("SHOELABEL_INCEPTION_WEIGHTS", "w.h5")
    env = get_settings().environment()
    assert env == {
        "SHOELABEL_HOME": str(tmp_path / "rel-home"),
        "SHOELABEL_DB": f"sqlite:///{tmp_path / 'rel.db'}",
        "SHOELABEL_INCEPTION_WEIGHTS": str(tmp_path / "w.h5"),
    }


@pytest.mark.parametrize(
    "url",
    ["sqlite:///:memory:", "sqlite://", "postgresql://u:p@db/shoes", "sqlite:////abs/path.db"],
)
def test_other_urls_are_left_alone(url: str) -> None:
    assert absolute_sqlite_url(url) == url
