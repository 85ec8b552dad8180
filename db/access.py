"""Who may do what: the acting person (an :class:`Actor`), what each role may do, and the folders the
app may import from.

Every write service takes the actor and checks it here, on the server, whatever the pages show:

| role | may |
|---|---|
| viewer | browse photos, rounds, predictions and the team page |
| reviewer | what a viewer may, and review (answer, undo their own answers) |
| admin | everything: settle conflicts, import, retrain and refresh predictions, accounts and team settings |

The command lines act as :data:`OPERATOR` (whoever runs the server is its admin, and may read any path).
In the app, an actor without an account is the single user of a local app (no sign-in): an admin too.

Import paths typed into the app are checked before anything is read or even looked up: the path is made
absolute and normalised lexically (``..`` taken out without touching the disk) and must lie in one of
``SHOELABEL_IMPORT_ROOTS``; only then is it resolved on disk, and a symlink leading out is refused the same
way. Every refusal has the same message, so it tells nothing about the path. Without import roots, a local
single-user app imports from any path (nobody else reaches it) and a team server from none.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from db.models import Role
from shoelabel.errors import UserError
from shoelabel.settings import get_settings


class PermissionDenied(UserError):
    """The actor's role does not allow what was asked (nothing was done)."""


class Permission(enum.StrEnum):
    BROWSE = "browse"  # photos, rounds, predictions, the team page
    REVIEW = "review"  # answer in the review queue, undo one's own answers
    SETTLE = "settle"  # settle the photos reviewers disagree on
    IMPORT = "import"  # ingest folders, import manifests, add uploads to the pool
    TRAIN = "train"  # start rounds and prediction refreshes, dismiss job notices
    MANAGE = "manage"  # accounts and team settings
    SCHEMA = "schema"  # add attributes, rename and merge classes


ALLOWED: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.BROWSE}),
    Role.REVIEWER: frozenset({Permission.BROWSE, Permission.REVIEW}),
    Role.ADMIN: frozenset(Permission),
}

WHAT = {
    Permission.BROWSE: "browse the catalogue",
    Permission.REVIEW: "review photos",
    Permission.SETTLE: "settle conflicts",
    Permission.IMPORT: "import photos",
    Permission.TRAIN: "start rounds or prediction refreshes",
    Permission.MANAGE: "manage accounts and team settings",
    Permission.SCHEMA: "add attributes or rename and merge classes",
}


@dataclass(frozen=True)
class Actor:
    """Who acts: a name (recorded as the reviewer of answers) and a role."""

    name: str
    role: Role
    account_id: int | None = None  # the signed-in account; None: nobody signs in (a local app, a command line)
    terminal: bool = False  # the server's operator at a command line: any path

    @property
    def signed_in(self) -> bool:
        return self.account_id is not None


OPERATOR = Actor("operator", Role.ADMIN, terminal=True)


def can(actor: Actor | None, permission: Permission) -> bool:
    """Whether ``actor`` may do what ``permission`` names (nobody, ``None``, may do nothing)."""
    return actor is not None and permission in ALLOWED.get(Role(actor.role), frozenset())


def require(actor: Actor | None, permission: Permission) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may do what ``permission`` names."""
    if actor is None:
        raise PermissionDenied(f"Sign in to {WHAT[permission]}.")
    if not can(actor, permission):
        raise PermissionDenied(
            f"Your role ({Role(actor.role).value}) does not allow you to {WHAT[permission]}; ask an admin."
        )


def answer_as(actor: Actor, reviewer: str) -> None:
    """A signed-in account answers under its own name only (the app never asks it for a name)."""
    if actor.signed_in and " ".join(str(reviewer or "").split()) != actor.name:
        raise PermissionDenied("Answers are recorded under the name of the signed-in account only.")


# --------------------------------------------------------------------------- import roots


class ImportPathRefused(PermissionDenied):
    """A path typed into the app that the app may not read (always the same message for a given reason)."""


NO_ROOTS = (
    "This server imports only from the folders named by SHOELABEL_IMPORT_ROOTS, and none is set. "
    "Ask whoever runs the server to set it (folders separated by '{sep}') and start the app again, "
    "or import from a terminal on the server."
)
OUTSIDE = "Only paths inside the import folders of this server can be imported: {roots}. Give a full path inside one."


@dataclass(frozen=True)
class ImportRoots:
    """Where an actor may import from: ``roots``, or anywhere when ``roots`` is None."""

    roots: tuple[str, ...] | None

    def refusal(self) -> ImportPathRefused:
        return ImportPathRefused(OUTSIDE.format(roots=", ".join(self.roots or ())))

    def check(self, path: str | os.PathLike[str]) -> Path:
        """``path`` as it may be read (inside the roots, symlinks resolved), or :class:`ImportPathRefused`.

        Nothing on disk is touched for a path that is not inside a root lexically.
        """
        if self.roots is None:
            return Path(path).expanduser()
        text = os.fspath(path)
        if "\0" in text or not os.path.isabs(text):
            raise self.refusal()
        lexical = os.path.normpath(text)
        if not _inside_any(lexical, self.roots):
            raise self.refusal()
        try:  # inside lexically: now the disk may be read, to refuse symlinks that lead out
            real = os.path.realpath(lexical)
            real_roots = [os.path.realpath(root) for root in self.roots]
        except (OSError, ValueError):
            raise self.refusal() from None
        if not _inside_any(real, real_roots):
            raise self.refusal()
        return Path(real)

    def allows(self, path: str | os.PathLike[str]) -> bool:
        try:
            self.check(path)
        except ImportPathRefused:
            return False
        return True


def _inside_any(path: str, roots: Sequence[str]) -> bool:
    path = os.path.normcase(path)
    for root in roots:
        root = os.path.normcase(root)
        try:
            if os.path.commonpath([path, root]) == root:
                return True
        except ValueError:  # another drive (Windows)
            continue
    return False


def import_roots(actor: Actor, roots: Sequence[str] | None = None) -> ImportRoots:
    """Where ``actor`` may import from (``roots``: the configured ``SHOELABEL_IMPORT_ROOTS`` by default);
    :class:`PermissionDenied` when the actor may not import at all."""
    require(actor, Permission.IMPORT)
    if actor.terminal:
        return ImportRoots(None)
    roots = tuple(get_settings().import_roots if roots is None else roots)
    if roots:
        return ImportRoots(roots)
    if not actor.signed_in:
        return ImportRoots(None)  # a local single-user app: today's behaviour
    raise ImportPathRefused(NO_ROOTS.format(sep=os.pathsep))
