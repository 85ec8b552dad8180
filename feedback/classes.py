"""The label schema: attributes and their classes, and the class hygiene admins do.

``python -m feedback.classes list``                          attributes and their classes
``python -m feedback.classes add-attribute colour``          a new attribute, with no classes yet
``python -m feedback.classes add-class --attribute colour Black White``
``python -m feedback.classes rename --attribute brand "ADIDAS Originals" "Adidas Originals"``
``python -m feedback.classes merge --attribute brand "ADIDAS Originals" ADIDAS``   its photos read as ADIDAS
``python -m feedback.classes unmerge --attribute brand "ADIDAS Originals"``        the merge undone
``python -m feedback.classes rename-attribute colour color``   an attribute's new name (not brand's)
``python -m feedback.classes history``                       every rename, merge and undone merge, who and when

A rename or a merge rewrites no answer: each stays stored as it was given, the history shows
who answered what, and every label rule reads a merged class as the class it was merged into
(see :class:`db.models.LabelClass`). Models learn the new classes at their next round; until
then their predictions under an old name are read as the class it now is. For the same reason a merge
can be undone: the class reads as itself again, with the classes that had been merged into it.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select, union, update
from sqlalchemy.orm import Session, aliased

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, Permission, PermissionDenied, can, require
from db.catalog import (
    ClassError,
    attributes,
    class_names,
    clean_class_name,
    find_attribute,
    find_class,
    get_or_create_attribute,
    get_or_create_class,
    new_attribute_name,
    require_attribute,
)
from db.labels import imported_images, same_classes
from db.models import BRAND_ID, Attribute, ClassChange, LabelClass, Review, TeamSetting, utcnow
from shoelabel.cli import command

REVIEWERS_ADD_CLASSES = "reviewers_add_classes"  # the team setting: reviewers may add a class with an answer


@dataclass(frozen=True)
class Change:
    attribute: str
    kind: str
    old_name: str
    new_name: str
    changed_by: str
    changed_at: datetime
    photos: int | None = None  # a merge's: the photos labelled or answered with the merged class


class AttributeExists(ClassError):
    """An attribute of that name is there already."""


@dataclass
class ClassesAdded:
    """What adding classes to an attribute did, name by name."""

    attribute: str
    added: list[str] = field(default_factory=list)  # new classes, as stored
    present: list[tuple[str, str]] = field(default_factory=list)  # (name given, the class it is already)
    repeated: list[tuple[str, str]] = field(default_factory=list)  # (name given, an earlier name it repeats)

    def describe(self) -> str:
        added = ", ".join(repr(name) for name in self.added)
        lines = [f"{self.attribute}: added {added}." if self.added else f"{self.attribute}: no class added."]
        for given, stored in self.present:
            lines.append(
                f"{given!r} is a class already." if given == stored else f"{given!r} is the class {stored!r} already."
            )
        lines += [f"{given!r} is {first!r} again: added once." for given, first in self.repeated]
        return " ".join(lines)


@dataclass(frozen=True)
class MergePreview:
    """What a merge would do, to ask before doing it."""

    attribute: str
    source: str
    into: str
    photos: int  # labelled (imported) or answered with ``source``: they read as ``into`` after the merge

    def question(self) -> str:
        return (
            f"Merge {self.source!r} into {self.into!r}? {self.photos} photos labelled or answered "
            f"{self.source!r} will read as {self.into!r}."
        )


def schema(*, engine: Engine | None = None) -> dict[str, list[str]]:
    """Every attribute (brand first) with its classes in use."""
    with session_scope(engine or get_engine()) as session:
        return {a.name: class_names(session, a.id) for a in attributes(session)}


def attribute_ids(*, engine: Engine | None = None) -> dict[str, int]:
    """Every attribute's id by name, brand first."""
    with session_scope(engine or get_engine()) as session:
        return {a.name: a.id for a in attributes(session)}


def class_list(attribute: str = "brand", *, engine: Engine | None = None) -> list[str]:
    """The attribute's classes in use, sorted by name."""
    with session_scope(engine or get_engine()) as session:
        return class_names(session, require_attribute(session, attribute).id)


def add_attribute(name: str, *, engine: Engine | None = None, actor: Actor = OPERATOR, exist_ok: bool = True) -> str:
    """Add an attribute; returns its stored name. One that exists (in any case) is kept as it is, or, with
    ``exist_ok=False``, refused with :class:`AttributeExists`."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        found = find_attribute(session, name)
        if found is not None and not exist_ok:
            raise AttributeExists(
                f"There is an attribute {found.name!r} already; nothing was added. To give it more classes, "
                "use Add classes (python -m feedback.classes add-class)."
            )
        return (found or get_or_create_attribute(session, name)).name


def add_classes(
    attribute: str, names: list[str], *, engine: Engine | None = None, actor: Actor = OPERATOR
) -> ClassesAdded:
    """Add classes to an attribute; says which were added, which it has already (in any case, or under an
    old name) and which the list repeats."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        found = require_attribute(session, attribute)
        outcome = ClassesAdded(found.name)
        given: dict[str, str] = {}  # lower-case name -> the first name given
        for name in names:
            cleaned = clean_class_name(name)
            if cleaned.lower() in given:
                outcome.repeated.append((cleaned, given[cleaned.lower()]))
                continue
            given[cleaned.lower()] = cleaned
            if (stored := find_class(session, cleaned, found.id)) is not None:
                outcome.present.append((cleaned, stored.name))
            else:
                outcome.added.append(get_or_create_class(session, cleaned, found.id).name)
        return outcome


def known_class(attribute: str, name: str, *, engine: Engine | None = None) -> str | None:
    """The class ``name`` is (in any case, under an old name, or merged), by its name now; None if new."""
    with session_scope(engine or get_engine()) as session:
        found = find_class(session, name, require_attribute(session, attribute).id)
        return None if found is None else found.name


def reviewers_add_classes(*, engine: Engine | None = None) -> bool:
    """Whether reviewers may add a class with an answer (a team setting; admins always may)."""
    with session_scope(engine or get_engine()) as session:
        return _reviewers_add_classes(session)


def _reviewers_add_classes(session: Session) -> bool:
    setting = session.get(TeamSetting, REVIEWERS_ADD_CLASSES)
    return bool(setting is not None and (setting.value or {}).get("allowed") is True)


def set_reviewers_add_classes(allowed: bool, *, actor: Actor, engine: Engine | None = None) -> bool:
    """Let reviewers add classes with their answers, or not; admins only (a team setting)."""
    require(actor, Permission.MANAGE)
    with session_scope(engine or get_engine(), write=True) as session:
        setting = session.get(TeamSetting, REVIEWERS_ADD_CLASSES)
        if setting is None:
            setting = TeamSetting(key=REVIEWERS_ADD_CLASSES, value={})
            session.add(setting)
        setting.value = {"allowed": bool(allowed)}
        setting.updated_at = utcnow()
        setting.updated_by = actor.name[:120]
    return bool(allowed)


def may_add_classes(actor: Actor | None, *, engine: Engine | None = None) -> bool:
    """Whether ``actor`` may add a class with an answer: an admin, or a reviewer when the team allows it."""
    if can(actor, Permission.SCHEMA):
        return True
    return can(actor, Permission.REVIEW) and reviewers_add_classes(engine=engine)


def add_answer_class(attribute: str, name: str, *, engine: Engine | None = None, actor: Actor = OPERATOR) -> str:
    """Add the class a reviewer answers with (see :func:`may_add_classes`); returns its stored name (the class
    it is already, when it is not new)."""
    with session_scope(engine or get_engine(), write=True) as session:
        if not can(actor, Permission.SCHEMA):
            require(actor, Permission.REVIEW)
            if not _reviewers_add_classes(session):
                raise PermissionDenied(
                    f"Only an admin can add a class with an answer here: ask one to add {name!r}, or to let "
                    "reviewers add classes (Classes page)."
                )
        return get_or_create_class(session, name, require_attribute(session, attribute).id).name


def rename_attribute(old: str, new: str, *, engine: Engine | None = None, actor: Actor = OPERATOR) -> str:
    """Give an attribute other than brand a new name; returns it. Its classes, answers and models stay its own
    (they refer to it by number)."""
    require(actor, Permission.SCHEMA)
    new = new_attribute_name(new)
    with session_scope(engine or get_engine(), write=True) as session:
        found = require_attribute(session, old)
        if found.id == BRAND_ID:
            raise ClassError("brand cannot be renamed: it is the attribute every catalogue has.")
        clash = session.scalar(select(Attribute).where(func.lower(Attribute.name) == new, Attribute.id != found.id))
        if clash is not None:
            raise ClassError(f"There is an attribute {clash.name!r} already: choose another name.")
        found.name = new
        return new


def _class(session: Session, attribute: Attribute, name: str) -> LabelClass:
    found = find_class(session, name, attribute.id)
    if found is None:
        known = ", ".join(class_names(session, attribute.id)) or "none yet"
        raise ClassError(f"{attribute.name} has no class {name!r}. Its classes: {known}.")
    return found


def rename_class(
    attribute: str, old: str, new: str, *, engine: Engine | None = None, actor: Actor = OPERATOR
) -> Change:
    """Give a class a new name (a change of case or spelling); to join two classes, merge them."""
    require(actor, Permission.SCHEMA)
    new = clean_class_name(new)
    with session_scope(engine or get_engine(), write=True) as session:
        found = require_attribute(session, attribute)
        label_class = _class(session, found, old)
        clash = session.scalar(
            select(LabelClass).where(
                LabelClass.attribute_id == found.id,
                func.lower(LabelClass.name) == new.lower(),
                LabelClass.id != label_class.id,
            )
        )
        if clash is not None:
            raise ClassError(
                f"{found.name} has a class {clash.name!r} already: merge {label_class.name!r} into it instead."
            )
        change = ClassChange(
            attribute_id=found.id,
            kind="rename",
            class_id=label_class.id,
            old_name=label_class.name,
            new_name=new,
            changed_by=actor.name,
        )
        label_class.name = new
        session.add(change)
        session.flush()
        return Change(found.name, "rename", change.old_name, new, actor.name, change.changed_at)


def _merge_pair(session: Session, attribute: str, source: str, into: str) -> tuple[Attribute, LabelClass, LabelClass]:
    found = require_attribute(session, attribute)
    merged, survivor = _class(session, found, source), _class(session, found, into)
    if merged.id == survivor.id:
        raise ClassError(f"{source!r} and {into!r} are one class of {found.name} already.")
    return found, merged, survivor


def _photos_of(session: Session, label_class: LabelClass) -> int:
    """Photos that arrived with the class, or have a live answer of it (or of a class merged into it)."""
    answered = select(Review.image_id).where(
        Review.attribute_id == label_class.attribute_id,
        Review.undone_at.is_(None),
        Review.class_id.in_(same_classes([label_class.id])),
    )
    either = union(imported_images([label_class.id], label_class.attribute_id), answered).subquery()
    return session.scalar(select(func.count()).select_from(either)) or 0


def _record_merge_change(
    session: Session,
    kind: str,
    attribute: Attribute,
    merged: LabelClass,
    survivor: LabelClass,
    actor: Actor,
    photos: int | None = None,
) -> Change:
    """Log a merge or an undone merge (``kind``) of ``merged`` into ``survivor`` and return it as a Change."""
    change = ClassChange(
        attribute_id=attribute.id,
        kind=kind,
        class_id=merged.id,
        into_class_id=survivor.id,
        old_name=merged.name,
        new_name=survivor.name,
        changed_by=actor.name,
    )
    session.add(change)
    session.flush()
    return Change(attribute.name, kind, merged.name, survivor.name, actor.name, change.changed_at, photos)


def merge_preview(attribute: str, source: str, into: str, *, engine: Engine | None = None) -> MergePreview:
    """What merging ``source`` into ``into`` would do (refused as the merge would be)."""
    with session_scope(engine or get_engine()) as session:
        found, merged, survivor = _merge_pair(session, attribute, source, into)
        return MergePreview(found.name, merged.name, survivor.name, _photos_of(session, merged))


def merge_classes(
    attribute: str, source: str, into: str, *, engine: Engine | None = None, actor: Actor = OPERATOR
) -> Change:
    """Make ``source`` one with ``into``: every photo labelled ``source`` is labelled ``into`` from now on
    (until :func:`undo_merge`)."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        found, merged, survivor = _merge_pair(session, attribute, source, into)
        photos = _photos_of(session, merged)
        merged.merged_into_id = survivor.id
        session.execute(  # classes merged into it before: into the survivor too, so one step always resolves
            update(LabelClass).where(LabelClass.merged_into_id == merged.id).values(merged_into_id=survivor.id)
        )
        return _record_merge_change(session, "merge", found, merged, survivor, actor, photos)


def merged_classes(attribute: str = "brand", *, engine: Engine | None = None) -> list[tuple[str, str]]:
    """The attribute's merged classes, each with the class it reads as now, by name."""
    with session_scope(engine or get_engine()) as session:
        return _merged(session, require_attribute(session, attribute))


def _merged(session: Session, attribute: Attribute) -> list[tuple[str, str]]:
    survivor = aliased(LabelClass)
    rows = session.execute(
        select(LabelClass.name, survivor.name)
        .join(survivor, survivor.id == LabelClass.merged_into_id)
        .where(LabelClass.attribute_id == attribute.id)
        .order_by(LabelClass.name)
    )
    return [(name, into) for name, into in rows]


def _last_merge_into(session: Session, class_id: int) -> int | None:
    """The class ``class_id`` was last merged into (by its own merge, not one that carried it along)."""
    return session.scalar(
        select(ClassChange.into_class_id)
        .where(ClassChange.class_id == class_id, ClassChange.kind == "merge")
        .order_by(ClassChange.changed_at.desc(), ClassChange.id.desc())
        .limit(1)
    )


def undo_merge(attribute: str, name: str, *, engine: Engine | None = None, actor: Actor = OPERATOR) -> Change:
    """Undo the merge of class ``name``: it reads as itself again, and so do the classes that had been merged
    into it (they read as it again). Answers are untouched, as by the merge."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        found = require_attribute(session, attribute)
        merged = session.scalar(
            select(LabelClass).where(LabelClass.attribute_id == found.id, func.lower(LabelClass.name) == name.lower())
        )
        if merged is None or merged.merged_into_id is None:
            known = ", ".join(n for n, _ in _merged(session, found)) or "none"
            raise ClassError(f"{name!r} is not merged into another class of {found.name}. Merged classes: {known}.")
        survivor = session.get(LabelClass, merged.merged_into_id)
        carried = session.scalars(select(LabelClass).where(LabelClass.merged_into_id == survivor.id))
        for other in carried:  # merged into this class before, then carried along into the survivor
            if other.id != merged.id and _last_merge_into(session, other.id) == merged.id:
                other.merged_into_id = merged.id
        merged.merged_into_id = None
        return _record_merge_change(session, "unmerge", found, merged, survivor, actor)


def history(*, engine: Engine | None = None) -> list[Change]:
    """Every rename and merge, oldest first."""
    with session_scope(engine or get_engine()) as session:
        rows = session.execute(
            select(ClassChange, Attribute.name)
            .join(Attribute, Attribute.id == ClassChange.attribute_id)
            .order_by(ClassChange.changed_at, ClassChange.id)
        )
        return [Change(name, c.kind, c.old_name, c.new_name, c.changed_by, c.changed_at) for c, name in rows]


def describe(change: Change) -> str:
    verb = {"rename": "renamed", "merge": "merged", "unmerge": "undid the merge of"}[change.kind]
    into = "to" if change.kind == "rename" else "into"
    when = change.changed_at.strftime("%Y-%m-%d %H:%M")
    return f"{when}  {change.attribute}: {verb} {change.old_name!r} {into} {change.new_name!r} by {change.changed_by}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m feedback.classes", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every attribute and its classes")
    commands.add_parser("history", help="every rename, merge and undone merge")
    added = commands.add_parser("add-attribute", help="a new attribute (brand is there from the start)")
    added.add_argument("name")
    classes = commands.add_parser("add-class", help="classes for an attribute (answers may add them too)")
    classes.add_argument("names", nargs="+")
    renamed = commands.add_parser("rename", help="give a class a new name")
    renamed.add_argument("old")
    renamed.add_argument("new")
    merged = commands.add_parser("merge", help="merge SOURCE into INTO: its photos are labelled INTO from now on")
    merged.add_argument("source")
    merged.add_argument("into")
    attribute = commands.add_parser("rename-attribute", help="give an attribute (not brand) a new name")
    attribute.add_argument("old")
    attribute.add_argument("new")
    unmerged = commands.add_parser("unmerge", help="undo the merge of a class: it reads as itself again")
    unmerged.add_argument("name")
    for sub in (classes, renamed, merged, unmerged):
        sub.add_argument("--attribute", default="brand", help="the attribute the classes belong to (default brand)")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name, names in schema().items():
            print(f"{name} ({len(names)} classes): {', '.join(names) or '-'}")
    elif args.command == "history":
        changes = history()
        for change in changes:
            print(describe(change))
        if not changes:
            print("No class has been renamed or merged.")
    elif args.command == "add-attribute":
        try:
            print(
                f"Attribute {add_attribute(args.name, exist_ok=False)!r} is ready: answer it in the app, or "
                "import a manifest column."
            )
        except AttributeExists as exc:
            print(str(exc).replace("use Add classes (python -m feedback.classes add-class)", "use add-class"))
    elif args.command == "add-class":
        print(add_classes(args.attribute, args.names).describe())
    elif args.command == "rename-attribute":
        print(f"Attribute {args.old!r} is now {rename_attribute(args.old, args.new)!r}.")
    elif args.command == "rename":
        print(describe(rename_class(args.attribute, args.old, args.new)))
    elif args.command == "merge":
        change = merge_classes(args.attribute, args.source, args.into)
        print(describe(change))
        print(
            f"{change.photos} photos labelled or answered {change.old_name!r} now read as {change.new_name!r}. "
            f"To undo: python -m feedback.classes unmerge --attribute {change.attribute} {shlex.quote(change.old_name)}"
        )
        print("The models learn the merged classes at their next round (python -m modeling.retrain).")
    else:
        print(describe(undo_merge(args.attribute, args.name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
