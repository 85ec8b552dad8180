"""Accounts of a team server: who may sign in, with which role, and their sign-in sessions.

``python -m feedback.accounts add NAME --role reviewer [--email E] [--password-stdin | --sso-only]``
``python -m feedback.accounts list | set-role NAME ROLE | set-email NAME E | disable NAME | enable NAME``
``python -m feedback.accounts reset-password NAME [--password-stdin] | unlock NAME | remove NAME``

Passwords are stored only as Argon2id hashes (argon2-cffi), re-hashed on sign-in when the parameters
change. No account is ever locked: after :data:`FREE_TRIES` wrong passwords in a row for a name (an
account's or not), each further sign-in with that name waits 2, 4, 8, ... seconds, at most
:data:`MAX_WAIT_S`, then is checked as usual, so the owner still gets in with the right password. An
admin can clear the wait (``unlock``, or the Team page).
A sign-in opens a session that expires after :data:`SESSION_HOURS`; only a SHA-256 of its random token is
stored. An account with an e-mail can also sign in by single sign-on (``st.login``) with that e-mail.

Once one account exists, the app asks everyone to sign in (see ``ui/auth.py``).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.access import Actor, Permission, require
from db.models import Account, Role, SignInFailure, SignInSession, utcnow
from feedback.reviews import MAX_REVIEWER_LENGTH
from shoelabel.cli import command
from shoelabel.errors import UserError

FREE_TRIES = 5  # wrong passwords in a row for a name before its sign-ins wait
MAX_WAIT_S = 60
FORGET_FAILURES = timedelta(hours=1)  # a name's wrong passwords count until it has had none for this long
SESSION_HOURS = 12
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = MAX_REVIEWER_LENGTH  # the name is recorded as the reviewer of the account's answers
MAX_EMAIL_LENGTH = 320
WRONG = "Wrong name or password."  # the same for an unknown name, a wrong password and an SSO-only account
sleep = time.sleep  # how a sign-in waits (tests replace it)


class AccountError(UserError, ValueError):
    """An account command or change that cannot be done as asked (nothing was changed)."""


class SignInError(UserError):
    """A sign-in that was refused; the message says why, without telling which names exist."""


@dataclass(frozen=True)
class AccountView:
    name: str
    role: Role
    email: str | None
    has_password: bool
    disabled: bool
    created_at: datetime
    wrong_passwords: int = 0  # in a row, lately, for this name

    @property
    def wait_s(self) -> float:
        """How long a sign-in with this name waits now."""
        return wait_seconds(self.wrong_passwords)

    def state(self) -> str:
        if self.disabled:
            return "disabled"
        if self.wait_s:
            return f"sign-ins wait {self.wait_s:g} s ({self.wrong_passwords} wrong passwords)"
        return "active"

    @property
    def sign_in(self) -> str:
        ways = (["password"] if self.has_password else []) + (["single sign-on"] if self.email else [])
        return " + ".join(ways) or "none"


@dataclass(frozen=True)
class SignedIn:
    token: str  # kept by the browser session; only its hash is stored
    actor: Actor
    expires_at: datetime


# --------------------------------------------------------------------------- passwords


@cache
def hasher() -> PasswordHasher:
    return PasswordHasher()  # Argon2id with the library's recommended parameters


@cache
def _decoy_hash() -> str:
    """A hash to verify against when the name is unknown, so that a sign-in takes as long either way."""
    return hasher().hash(secrets.token_urlsafe(16))


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"A password has at most {MAX_PASSWORD_LENGTH} characters.")
    return password


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (salted: two hashes of one password differ)."""
    return hasher().hash(check_password(password))


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (False for no hash or a damaged one)."""
    try:
        return hasher().verify(stored or _decoy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- names and roles


def clean_name(name: str) -> str:
    """An account name: recorded as the reviewer of the account's answers."""
    cleaned = " ".join(str(name or "").split())
    problems = {
        "An account needs a name.": not cleaned,
        f"An account name has at most {MAX_NAME_LENGTH} characters.": len(cleaned) > MAX_NAME_LENGTH,
        "An account name cannot hold control characters.": any(not ch.isprintable() for ch in cleaned),
    }
    for message, found in problems.items():
        if found:
            raise AccountError(message)
    return cleaned


def clean_email(email: str | None) -> str | None:
    if email is None or not str(email).strip():
        return None
    cleaned = str(email).strip().lower()
    local, at, domain = cleaned.partition("@")
    if not (local and at and domain) or "@" in domain or any(ch.isspace() for ch in cleaned):
        raise AccountError("Give an e-mail address like ann@example.com.")
    if len(cleaned) > MAX_EMAIL_LENGTH:
        raise AccountError(f"An e-mail address has at most {MAX_EMAIL_LENGTH} characters.")
    return cleaned


def parse_role(role: Role | str) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        raise AccountError(f"Unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}.") from None


def _view(account: Account, wrong_passwords: int = 0) -> AccountView:
    return AccountView(
        name=account.name,
        role=Role(account.role),
        email=account.email,
        has_password=account.password_hash is not None,
        disabled=account.disabled,
        created_at=account.created_at,
        wrong_passwords=wrong_passwords,
    )


def _actor(account: Account) -> Actor:
    return Actor(account.name, Role(account.role), account_id=account.id)


def _account(session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == clean_name(name)))
    if account is None:
        raise AccountError(f"No account named {clean_name(name)!r}. See them with: python -m feedback.accounts list")
    return account


# --------------------------------------------------------------------------- managing accounts


def add_account(
    name: str,
    role: Role | str,
    *,
    password: str | None = None,
    email: str | None = None,
    engine: Engine | None = None,
    actor: Actor | None = None,
) -> AccountView:
    """A new account; it needs a password, an e-mail for single sign-on, or both.

    With an ``actor`` (the app), only an admin may; without one, the caller is the server's operator."""
    if actor is not None:
        require(actor, Permission.MANAGE)
    name, role, email = clean_name(name), parse_role(role), clean_email(email)
    if password is None and email is None:
        raise AccountError("An account needs a password, or an e-mail to sign in with single sign-on.")
    hashed = hash_password(password) if password is not None else None
    try:
        with session_scope(engine or get_engine(), write=True) as session:
            if session.scalar(select(Account.id).where(Account.name == name)) is not None:
                raise AccountError(f"There is an account named {name!r} already.")
            if email and session.scalar(select(Account.id).where(Account.email == email)) is not None:
                raise AccountError(f"Another account has the e-mail {email} already.")
            account = Account(name=name, role=role, email=email, password_hash=hashed, failed_attempts=0)
            session.add(account)
            session.flush()
            return _view(account)
    except IntegrityError:  # added by someone else at the same moment
        raise AccountError(f"There is an account named {name!r} or with that e-mail already.") from None


def list_accounts(*, engine: Engine | None = None, now: datetime | None = None) -> list[AccountView]:
    """Every account, by name, with the wrong passwords lately given for its name."""
    with session_scope(engine or get_engine()) as session:
        found = list(session.scalars(select(Account).order_by(Account.name)))
        return [_view(a, _failures(session, name_key(a.name), now or utcnow())) for a in found]


def accounts_exist(*, engine: Engine | None = None) -> bool:
    """Whether any account exists: then the app asks everyone to sign in."""
    with session_scope(engine or get_engine()) as session:
        return session.scalar(select(Account.id).limit(1)) is not None


def set_role(name: str, role: Role | str, *, engine: Engine | None = None) -> AccountView:
    """Change an account's role (it applies at once, also to open sessions)."""
    role = parse_role(role)
    with session_scope(engine or get_engine(), write=True) as session:
        account = _account(session, name)
        account.role = role
        return _view(account)


def set_email(name: str, email: str | None, *, engine: Engine | None = None) -> AccountView:
    """Set (or, with None, remove) the e-mail an account signs in with by single sign-on."""
    email = clean_email(email)
    with session_scope(engine or get_engine(), write=True) as session:
        account = _account(session, name)
        if email is None and account.password_hash is None:
            raise AccountError(f"{account.name!r} has no password: it needs its e-mail to sign in.")
        other = session.scalar(select(Account).where(Account.email == email)) if email else None
        if other is not None and other.id != account.id:
            raise AccountError(f"Another account has the e-mail {email} already.")
        account.email = email
        return _view(account)


def set_disabled(name: str, disabled: bool = True, *, engine: Engine | None = None) -> AccountView:
    """Disable an account (it cannot sign in, and its sessions end) or enable it again."""
    with session_scope(engine or get_engine(), write=True) as session:
        account = _account(session, name)
        account.disabled = disabled
        if disabled:
            session.execute(delete(SignInSession).where(SignInSession.account_id == account.id))
        return _view(account)


def reset_password(
    name: str, password: str, *, engine: Engine | None = None, actor: Actor | None = None
) -> AccountView:
    """A new password; clears the name's wait and ends the account's sessions (an ``actor``: admins only)."""
    if actor is not None:
        require(actor, Permission.MANAGE)
    hashed = hash_password(password)
    with session_scope(engine or get_engine(), write=True) as session:
        account = _account(session, name)
        account.password_hash = hashed
        session.execute(delete(SignInFailure).where(SignInFailure.name_key == name_key(account.name)))
        session.execute(delete(SignInSession).where(SignInSession.account_id == account.id))
        return _view(account)


def unlock(name: str, *, engine: Engine | None = None, actor: Actor | None = None) -> AccountView:
    """Forget the wrong passwords given for an account's name: its sign-ins wait no more (an ``actor``:
    admins only)."""
    if actor is not None:
        require(actor, Permission.MANAGE)
    with session_scope(engine or get_engine(), write=True) as session:
        account = _account(session, name)
        session.execute(delete(SignInFailure).where(SignInFailure.name_key == name_key(account.name)))
        return _view(account)


def remove_account(name: str, *, engine: Engine | None = None) -> None:
    """Delete an account and its sessions (the answers it gave keep its name)."""
    with session_scope(engine or get_engine(), write=True) as session:
        account = _account(session, name)
        session.execute(delete(SignInSession).where(SignInSession.account_id == account.id))
        session.delete(account)


# --------------------------------------------------------------------------- signing in


def name_key(name: str) -> str:
    """What a name's wrong passwords are stored under (a hash: no typed name is stored)."""
    return hashlib.sha256(" ".join(str(name or "").split()).encode("utf-8", "surrogatepass")).hexdigest()


def wait_seconds(failures: int) -> float:
    """How long a sign-in waits after ``failures`` wrong passwords in a row for its name: nothing for the
    first :data:`FREE_TRIES`, then 2, 4, 8, ... seconds, at most :data:`MAX_WAIT_S`."""
    if failures < FREE_TRIES:
        return 0.0
    return float(min(MAX_WAIT_S, 2 ** min(failures - FREE_TRIES + 1, 16)))


def _failures(session: Session, key: str, now: datetime) -> int:
    row = session.get(SignInFailure, key)
    return row.failures if row is not None and row.last_failed_at > now - FORGET_FAILURES else 0


def sign_in_wait(name: str, *, engine: Engine | None = None, now: datetime | None = None) -> float:
    """How long a sign-in with ``name`` waits now, known name or not (the sign-in form says so)."""
    with session_scope(engine or get_engine()) as session:
        return wait_seconds(_failures(session, name_key(name), now or utcnow()))


def sign_in(name: str, password: str, *, engine: Engine | None = None, now: datetime | None = None) -> SignedIn:
    """Check a name and password and open a session; :class:`SignInError` otherwise.

    Every name is treated alike, known or not: it waits as its wrong passwords in a row say
    (:func:`wait_seconds`), its password is checked once against its hash (a decoy's for an unknown name),
    and a wrong one is counted. The check runs outside the writers' lock, which is taken only to record
    the outcome, so wrong sign-ins never hold up other writers.
    """
    engine = engine or get_engine()
    _decoy_hash()  # made once, before any name is checked, so the first check takes no longer than others
    cleaned = " ".join(str(name or "").split())
    password = str(password or "")[:MAX_PASSWORD_LENGTH]
    key = name_key(cleaned)
    with session_scope(engine) as session:  # a read: no lock
        account = session.scalar(select(Account).where(Account.name == cleaned)) if cleaned else None
        stored = account.password_hash if account is not None else None
        failures = _failures(session, key, now or utcnow())
    sleep(wait_seconds(failures))
    matches = verify_password(stored, password)  # an unknown name is checked against the decoy: as slow
    if account is None or not matches:
        _record_failure(engine, key, now or utcnow())
        raise SignInError(WRONG)
    renewed = hasher().hash(password) if hasher().check_needs_rehash(stored) else None
    return _open_session(engine, account.id, stored, renewed, key, now or utcnow())


def _record_failure(engine: Engine, key: str, now: datetime) -> None:
    """Count a wrong password for the name ``key``; failures nobody added to for a while are forgotten."""
    with session_scope(engine, write=True) as session:
        session.execute(
            delete(SignInFailure).where(SignInFailure.last_failed_at <= now - FORGET_FAILURES),
            execution_options={"synchronize_session": False},
        )
        row = session.get(SignInFailure, key)
        if row is None:
            row = SignInFailure(name_key=key, failures=0, last_failed_at=now)
            session.add(row)
        row.failures += 1
        row.last_failed_at = now


def _open_session(
    engine: Engine, account_id: int, checked: str | None, renewed: str | None, key: str, now: datetime
) -> SignedIn:
    """Record a right password: its name's failures forgotten, a new session (or why there is none)."""
    refusal = signed_in = None
    with session_scope(engine, write=True) as session:
        account = session.get(Account, account_id)
        if account is None or account.password_hash != checked:  # removed, or a new password meanwhile
            refusal = WRONG
        elif account.disabled:
            refusal = "This account is disabled; ask an admin."
        else:
            session.execute(delete(SignInFailure).where(SignInFailure.name_key == key))
            if renewed is not None:
                account.password_hash = renewed
            session.execute(delete(SignInSession).where(SignInSession.expires_at <= now))
            token = secrets.token_urlsafe(32)
            expires = now + timedelta(hours=SESSION_HOURS)
            session.add(
                SignInSession(token_hash=token_hash(token), account_id=account.id, created_at=now, expires_at=expires)
            )
            signed_in = SignedIn(token, _actor(account), expires)
    if signed_in is None:
        raise SignInError(refusal or WRONG)
    return signed_in


def session_actor(token: str | None, *, engine: Engine | None = None, now: datetime | None = None) -> Actor | None:
    """The account of a sign-in session with its current role, or None when the session is unknown,
    has expired, or its account is disabled."""
    if not token:
        return None
    with session_scope(engine or get_engine()) as session:
        row = session.execute(
            select(Account)
            .join(SignInSession, SignInSession.account_id == Account.id)
            .where(SignInSession.token_hash == token_hash(token), SignInSession.expires_at > (now or utcnow()))
        ).scalar_one_or_none()
        if row is None or row.disabled:
            return None
        return _actor(row)


def sign_out(token: str | None, *, engine: Engine | None = None) -> None:
    """End a sign-in session (nothing happens for an unknown one)."""
    if token:
        with session_scope(engine or get_engine(), write=True) as session:
            session.execute(delete(SignInSession).where(SignInSession.token_hash == token_hash(token)))


def email_actor(email: str | None, *, engine: Engine | None = None) -> Actor:
    """The account a single sign-on e-mail belongs to; :class:`SignInError` when there is none or it is disabled."""
    address = str(email or "").strip().lower()
    if not address:
        raise SignInError("Single sign-on gave no e-mail address, so no account can be found for you.")
    with session_scope(engine or get_engine()) as session:
        account = session.scalar(select(Account).where(func.lower(Account.email) == address))
        if account is None:
            raise SignInError(
                "No account has this e-mail address. Ask an admin to add one for it: "
                "python -m feedback.accounts add NAME --role reviewer --email ADDRESS --sso-only"
            )
        if account.disabled:
            raise SignInError("This account is disabled; ask an admin.")
        return _actor(account)


# --------------------------------------------------------------------------- command line


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return check_password(line.rstrip("\r\n"))
    first = getpass.getpass("Password: ")
    check_password(first)
    if getpass.getpass("Password again: ") != first:
        raise AccountError("The two passwords differ; nothing was changed.")
    return first


def _print_accounts(accounts: list[AccountView]) -> None:
    if not accounts:
        print("No accounts: the app runs for a single user on this machine. Add one with: "
              "python -m feedback.accounts add NAME --role admin")  # fmt: skip
        return
    rows = [("name", "role", "e-mail", "sign-in", "state")]
    rows += [(a.name, a.role.value, a.email or "-", a.sign_in, a.state()) for a in accounts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback.accounts", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    roles = [r.value for r in Role]
    add = commands.add_parser("add", help="add an account (asks its password twice)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=roles)
    add.add_argument("--email", help="the e-mail it signs in with by single sign-on")
    way = add.add_mutually_exclusive_group()
    way.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    way.add_argument("--sso-only", action="store_true", help="no password: single sign-on by --email only")
    commands.add_parser("list", help="every account with its role, e-mail and state")
    change = commands.add_parser("set-role", help="change an account's role")
    change.add_argument("name")
    change.add_argument("role", choices=roles)
    email = commands.add_parser("set-email", help="set the e-mail of an account (single sign-on); '' removes it")
    email.add_argument("name")
    email.add_argument("email")
    for name, text in (("disable", "stop an account from signing in"), ("enable", "let a disabled account back in")):
        commands.add_parser(name, help=text).add_argument("name")
    reset = commands.add_parser("reset-password", help="a new password; its sign-ins wait no more")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    commands.add_parser("unlock", help="forget the wrong passwords given for a name").add_argument("name")
    commands.add_parser("remove", help="delete an account (its answers keep its name)").add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "list":
        _print_accounts(list_accounts())
        return 0
    if args.command == "add":
        if args.sso_only and not args.email:
            raise AccountError("--sso-only needs --email: the account signs in with that e-mail.")
        password = None if args.sso_only else _read_password(args)
        view = add_account(args.name, args.role, password=password, email=args.email)
        print(f"Added {view.name} ({view.role.value}, signs in with {view.sign_in}).")
    elif args.command == "set-role":
        view = set_role(args.name, args.role)
        print(f"{view.name} is now {view.role.value}.")
    elif args.command == "set-email":
        view = set_email(args.name, args.email or None)
        print(f"{view.name} signs in with {view.sign_in}" + (f" ({view.email})." if view.email else "."))
    elif args.command in ("disable", "enable"):
        view = set_disabled(args.name, args.command == "disable")
        print(f"{view.name} is {view.state()}.")
    elif args.command == "reset-password":
        view = reset_password(args.name, _read_password(args))
        print(f"New password set for {view.name}; it is {view.state()}.")
    elif args.command == "unlock":
        view = unlock(args.name)
        print(f"{view.name} can sign in without waiting.")
    elif args.command == "remove":
        remove_account(args.name)
        print(f"Removed {clean_name(args.name)}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
