"""Accounts of a team server: password hashing, waits after wrong passwords, session expiry, single sign-on
by e-mail, and the ``python -m feedback.accounts`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from db import session_scope
from db.models import Account, Role, SignInSession, utcnow
from feedback import accounts
from feedback.accounts import (
    FREE_TRIES,
    SESSION_HOURS,
    AccountError,
    SignInError,
    accounts_exist,
    add_account,
    email_actor,
    list_accounts,
    remove_account,
    reset_password,
    session_actor,
    set_disabled,
    set_role,
    sign_in,
    sign_out,
    token_hash,
    verify_password,
)
from tests.conftest import REPO

PASSWORD = "correct horse battery"


def stored(engine: Engine, name: str) -> Account:
    with session_scope(engine) as session:
        return session.scalar(select(Account).where(Account.name == name))


def test_the_password_is_stored_only_as_an_argon2_hash(engine: Engine) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    row = stored(engine, "rita")
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert verify_password(row.password_hash, PASSWORD)
    assert not verify_password(row.password_hash, PASSWORD + "!")
    assert not verify_password(None, PASSWORD) and not verify_password("not a hash", PASSWORD)
    assert accounts.hash_password(PASSWORD) != accounts.hash_password(PASSWORD)  # salted
    with pytest.raises(AccountError, match="at least 8"):
        add_account("tom", "viewer", password="short", engine=engine)


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(engine: Engine) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with session_scope(engine, write=True) as session:
        session.scalar(select(Account).where(Account.name == "rita")).password_hash = weak
    sign_in("rita", PASSWORD, engine=engine)
    renewed = stored(engine, "rita").password_hash
    assert renewed != weak and not accounts.hasher().check_needs_rehash(renewed)
    assert verify_password(renewed, PASSWORD)


def test_sign_in_opens_a_session_stored_as_a_hash_that_expires(engine: Engine) -> None:
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    now = utcnow()
    signed = sign_in("  rita ", PASSWORD, engine=engine, now=now)
    assert (signed.actor.name, signed.actor.role, signed.actor.signed_in) == ("rita", Role.REVIEWER, True)
    with session_scope(engine) as session:
        [row] = session.scalars(select(SignInSession))
        assert row.token_hash == token_hash(signed.token) != signed.token
        assert row.expires_at == now + timedelta(hours=SESSION_HOURS)
    assert session_actor(signed.token, engine=engine, now=now + timedelta(hours=SESSION_HOURS - 1)) == signed.actor
    assert session_actor(signed.token, engine=engine, now=now + timedelta(hours=SESSION_HOURS, seconds=1)) is None
    assert session_actor("made-up", engine=engine) is None and session_actor(None, engine=engine) is None
    sign_out(signed.token, engine=engine)
    assert session_actor(signed.token, engine=engine) is None


@pytest.mark.slow
def test_a_password_reset_clears_the_wait_and_ends_sessions(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(accounts, "sleep", waits.append)
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    signed = sign_in("rita", PASSWORD, engine=engine)
    for _ in range(FREE_TRIES + 1):
        with pytest.raises(SignInError):
            sign_in("rita", "guess-guess", engine=engine)
    assert [a.state() for a in list_accounts(engine=engine)] == ["sign-ins wait 4 s (6 wrong passwords)"]
    reset_password("rita", "a new long password", engine=engine)
    assert [a.state() for a in list_accounts(engine=engine)] == ["active"]
    assert session_actor(signed.token, engine=engine) is None
    assert sign_in("rita", "a new long password", engine=engine).actor.name == "rita"


def test_unknown_names_and_sso_only_accounts_get_the_same_refusal(engine: Engine) -> None:
    add_account("sam", "viewer", email="sam@example.com", engine=engine)
    for name in ("nobody", "sam", ""):
        with pytest.raises(SignInError) as refused:
            sign_in(name, PASSWORD, engine=engine)
        assert str(refused.value) == accounts.WRONG


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(engine: Engine) -> None:
    add_account("rita", "reviewer", password=PASSWORD, email="Rita@Example.com", engine=engine)
    signed = sign_in("rita", PASSWORD, engine=engine)
    set_disabled("rita", engine=engine)
    assert session_actor(signed.token, engine=engine) is None
    with pytest.raises(SignInError, match="disabled"):
        sign_in("rita", PASSWORD, engine=engine)
    with pytest.raises(SignInError, match="disabled"):
        email_actor("rita@example.com", engine=engine)
    with pytest.raises(SignInError, match="Wrong name or password"):  # a wrong password says nothing more
        sign_in("rita", "guess-guess", engine=engine)
    set_disabled("rita", False, engine=engine)
    assert sign_in("rita", PASSWORD, engine=engine).actor.role == Role.REVIEWER


def test_roles_change_at_once_and_single_sign_on_maps_by_email(engine: Engine) -> None:
    assert not accounts_exist(engine=engine)
    add_account("ann", "admin", password=PASSWORD, engine=engine)
    add_account("sam", "viewer", email="Sam@Example.com", engine=engine)
    assert accounts_exist(engine=engine)
    signed = sign_in("ann", PASSWORD, engine=engine)
    set_role("ann", "reviewer", engine=engine)
    assert session_actor(signed.token, engine=engine).role == Role.REVIEWER
    assert email_actor(" SAM@example.COM ", engine=engine).name == "sam"
    with pytest.raises(SignInError, match="No account has this e-mail"):
        email_actor("eve@example.com", engine=engine)
    with pytest.raises(AccountError, match="already"):
        add_account("sam2", "viewer", email="sam@example.com", engine=engine)
    with pytest.raises(AccountError, match="already"):
        add_account("ann", "viewer", password=PASSWORD, engine=engine)
    with pytest.raises(AccountError, match="Unknown role"):
        set_role("ann", "owner", engine=engine)
    with pytest.raises(AccountError, match="needs a password, or an e-mail"):
        add_account("kim", "viewer", engine=engine)
    remove_account("sam", engine=engine)
    assert [a.name for a in list_accounts(engine=engine)] == ["ann"]


def run_command(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOELABEL_HOME": str(home)}
    env.pop("SHOELABEL_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "feedback.accounts", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_the_command_manages_accounts(home: Path, engine: Engine) -> None:
    added = run_command(home, "add", "Ann Lee", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "Added Ann Lee (admin" in added.stdout
    sso = run_command(home, "add", "sam", "--role", "viewer", "--email", "sam@example.com", "--sso-only")
    assert sso.returncode == 0, sso.stderr
    assert run_command(home, "set-role", "sam", "reviewer").returncode == 0
    assert run_command(home, "disable", "sam").returncode == 0
    listing = run_command(home, "list")
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["name", "role", "e-mail", "sign-in", "state"]
    assert any(line.startswith("Ann Lee") and "admin" in line and "active" in line for line in lines)
    assert any(line.startswith("sam") and "reviewer" in line and "disabled" in line for line in lines)
    assert PASSWORD not in listing.stdout
    assert sign_in("Ann Lee", PASSWORD, engine=engine).actor.role == Role.ADMIN

    refused = run_command(home, "add", "bo", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert (refused.returncode, refused.stderr.strip()) == (2, "error: A password needs at least 8 characters.")
    missing = run_command(home, "set-role", "nobody", "viewer")
    assert missing.returncode == 2 and "No account named 'nobody'" in missing.stderr
    assert "Traceback" not in missing.stderr

    reset = run_command(home, "reset-password", "Ann Lee", "--password-stdin", stdin="another long one\n")
    assert reset.returncode == 0, reset.stderr
    assert sign_in("Ann Lee", "another long one", engine=engine).actor.name == "Ann Lee"
    assert run_command(home, "remove", "sam").returncode == 0
    assert [a.name for a in list_accounts(engine=engine)] == ["Ann Lee"]
