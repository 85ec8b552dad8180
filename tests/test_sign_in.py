"""Signing in on a team server, as an attacker would try it: the password check never holds the writers'
lock, every refused name is answered alike, and wrong passwords slow a name down without locking it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from db import session_scope
from db.access import Actor, PermissionDenied
from db.models import Role, TeamSetting, utcnow
from feedback import accounts
from feedback.accounts import FORGET_FAILURES, FREE_TRIES, SignInError, add_account, list_accounts, sign_in, unlock

PASSWORD = "correct horse battery"


class GatedHasher:
    """The real hasher, except that each verify waits until the test lets it go (and counts the calls)."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.entered = threading.Event()
        self.go = threading.Event()
        self.verified = 0
        self.gated = False

    def verify(self, stored: str, password: str) -> bool:
        self.verified += 1
        if self.gated:
            self.entered.set()
            if not self.go.wait(20):
                raise TimeoutError("the test never let the password check go on")
        return self.real.verify(stored, password)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedHasher]:
    accounts._decoy_hash()  # made before the hasher is replaced
    hasher = GatedHasher(accounts.hasher())
    monkeypatch.setattr(accounts, "hasher", lambda: hasher)
    yield hasher
    hasher.go.set()


def write_one_row(engine: Engine, key: str) -> None:
    with session_scope(engine, write=True) as session:
        session.add(TeamSetting(key=key, value={}, updated_at=utcnow(), updated_by="test"))


def attempt(name: str, password: str, engine: Engine, outcome: list[object]) -> None:
    try:
        outcome.append(sign_in(name, password, engine=engine))
    except Exception as exc:
        outcome.append(exc)


@pytest.mark.parametrize(
    ("name", "password"), [("nobody", "a wrong password"), ("rita", "a wrong password"), ("rita", PASSWORD)]
)
def test_another_connection_writes_while_a_password_is_checked(
    db_engine: Engine, gated: GatedHasher, name: str, password: str
) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=db_engine)
    gated.gated = True
    outcome: list[object] = []
    signing_in = threading.Thread(target=attempt, args=(name, password, db_engine, outcome))
    signing_in.start()
    try:
        assert gated.entered.wait(20), "the password was never checked"
        writer = threading.Thread(target=write_one_row, args=(db_engine, "probe"))
        writer.start()
        writer.join(5)
        wrote_during_the_check = not writer.is_alive()
    finally:
        gated.go.set()
        signing_in.join(30)
    writer.join(60)
    assert wrote_during_the_check, "a writer waited for the sign-in's password check"
    [result] = outcome
    if password == PASSWORD:
        assert result.actor.name == "rita"  # the outcome is still recorded: a session
    else:
        assert isinstance(result, SignInError) and str(result) == accounts.WRONG


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """What each sign-in waited (recorded instead of slept)."""
    waited: list[float] = []
    monkeypatch.setattr(accounts, "sleep", waited.append)
    return waited


@pytest.mark.slow
def test_known_unknown_and_slowed_names_are_answered_alike(
    engine: Engine, gated: GatedHasher, waits: list[float]
) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    add_account("sam", "viewer", email="sam@example.com", engine=engine)  # single sign-on only
    answers = {}
    for name in ("rita", "nobody", "sam"):
        seen = []
        for _ in range(FREE_TRIES + 2):  # the last two come after the free tries
            checks, waits[:] = gated.verified, []
            with pytest.raises(SignInError) as refused:
                sign_in(name, "a wrong password", engine=engine)
            seen.append((str(refused.value), gated.verified - checks, list(waits)))
        answers[name] = seen
    assert answers["rita"] == answers["nobody"] == answers["sam"]
    assert {(message, checks) for message, checks, _ in answers["rita"]} == {(accounts.WRONG, 1)}
    assert [waited for *_, waited in answers["rita"][-2:]] == [[2.0], [4.0]]


@pytest.mark.slow
def test_wrong_passwords_slow_a_name_down_but_the_owner_still_gets_in(engine: Engine, waits: list[float]) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    for _ in range(FREE_TRIES + 7):
        with pytest.raises(SignInError):
            sign_in("rita", "a wrong password", engine=engine)
    assert waits == [0.0] * FREE_TRIES + [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    waits.clear()
    assert sign_in("rita", PASSWORD, engine=engine).actor.name == "rita"  # after the wait, not locked out
    assert waits == [60.0]
    with pytest.raises(SignInError):
        sign_in("rita", "a wrong password", engine=engine)
    assert waits[-1] == 0.0  # a sign-in starts the count again


def test_the_wait_is_forgotten_after_a_quiet_hour_or_by_an_admin(engine: Engine, waits: list[float]) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    now = utcnow()
    for _ in range(FREE_TRIES + 1):
        with pytest.raises(SignInError):
            sign_in("rita", "a wrong password", engine=engine, now=now)
    assert accounts.sign_in_wait("rita", engine=engine, now=now) == 4.0
    assert accounts.sign_in_wait("rita", engine=engine, now=now + FORGET_FAILURES + timedelta(seconds=1)) == 0.0
    with pytest.raises(PermissionDenied):
        unlock("rita", engine=engine, actor=Actor("rob", Role.REVIEWER))
    assert [a.wrong_passwords for a in list_accounts(engine=engine, now=now)] == [FREE_TRIES + 1]
    unlock("rita", engine=engine, actor=Actor("ann", Role.ADMIN))
    assert accounts.sign_in_wait("rita", engine=engine, now=now) == 0.0
    assert [a.state() for a in list_accounts(engine=engine, now=now)] == ["active"]
