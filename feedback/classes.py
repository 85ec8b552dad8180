"""The label schema: attributes and their classes, and the class hygiene admins do.

``python -m feedback.classes list``                          attributes and their classes
``python -m feedback.classes add-attribute colour``          a new attribute, with no classes yet
``python -m feedback.classes add-class --attribute colour Black White``
``python -m feedback.classes rename --attribute brand "ADIDAS Originals" "Adidas Originals"``
``python -m feedback.classes merge --attribute brand ADIDAS Adidas``   ADIDAS becomes Adidas
``python -m feedback.classes rename-attribute colour color``   an attribute's new name (not brand's)
``python -m feedback.classes history``                       every rename and merge, who and when

A rename or a merge rewrites no answer: each stays stored as it was given, the history shows
who answered what, and every label rule reads a merged class as the class it was merged into
(see :class:`db.models.LabelClass`). Models learn the new classes at their next round; until
then their predictions under an old name are read as the class it now is.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, Permission, require
from db.catalog import (
    ClassError,
    attributes,
    class_names,
    clean_class_name,
    find_class,
    get_or_create_attribute,
    get_or_create_class,
    new_attribute_name,
    require_attribute,
)
from db.models import BRAND_ID, Attribute, ClassChange, LabelClass
from shoelabel.cli import command


@dataclass(frozen=True)
class Change:
    attribute: str
    kind: str
    old_name: str
    new_name: str
    changed_by: str
    changed_at: datetime


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


def add_attribute(name: str, *, engine: Engine | None = None, actor: Actor = OPERATOR) -> str:
    """Add an attribute (a no-op if it exists); returns its stored name."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        return get_or_create_attribute(session, name).name


def add_classes(
    attribute: str, names: list[str], *, engine: Engine | None = None, actor: Actor = OPERATOR
) -> list[str]:
    """Add classes to an attribute (those it has already are kept); returns the attribute's classes."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        found = require_attribute(session, attribute)
        for name in names:
            get_or_create_class(session, name, found.id)
        return class_names(session, found.id)


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


def merge_classes(
    attribute: str, source: str, into: str, *, engine: Engine | None = None, actor: Actor = OPERATOR
) -> Change:
    """Make ``source`` one with ``into``: every photo labelled ``source`` is labelled ``into`` from now on."""
    require(actor, Permission.SCHEMA)
    with session_scope(engine or get_engine(), write=True) as session:
        found = require_attribute(session, attribute)
        merged, survivor = _class(session, found, source), _class(session, found, into)
        if merged.id == survivor.id:
            raise ClassError(f"{source!r} and {into!r} are one class of {found.name} already.")
        merged.merged_into_id = survivor.id
        session.execute(  # classes merged into it before: into the survivor too, so one step always resolves
            update(LabelClass).where(LabelClass.merged_into_id == merged.id).values(merged_into_id=survivor.id)
        )
        change = ClassChange(
            attribute_id=found.id,
            kind="merge",
            class_id=merged.id,
            into_class_id=survivor.id,
            old_name=merged.name,
            new_name=survivor.name,
            changed_by=actor.name,
        )
        session.add(change)
        session.flush()
        return Change(found.name, "merge", merged.name, survivor.name, actor.name, change.changed_at)


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
    verb = "renamed" if change.kind == "rename" else "merged"
    into = "to" if change.kind == "rename" else "into"
    when = change.changed_at.strftime("%Y-%m-%d %H:%M")
    return f"{when}  {change.attribute}: {verb} {change.old_name!r} {into} {change.new_name!r} by {change.changed_by}"


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback.classes", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every attribute and its classes")
    commands.add_parser("history", help="every rename and merge")
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
    for sub in (classes, renamed, merged):
        sub.add_argument("--attribute", default="brand", help="the attribute the classes belong to (default brand)")
    args = parser.parse_args(argv)
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
        print(f"Attribute {add_attribute(args.name)!r} is ready: answer it in the app, or import a manifest column.")
    elif args.command == "add-class":
        print(f"{args.attribute}: {', '.join(add_classes(args.attribute, args.names))}")
    elif args.command == "rename-attribute":
        print(f"Attribute {args.old!r} is now {rename_attribute(args.old, args.new)!r}.")
    elif args.command == "rename":
        print(describe(rename_class(args.attribute, args.old, args.new)))
    else:
        print(describe(merge_classes(args.attribute, args.source, args.into)))
        print("The models learn the merged classes at their next round (python -m modeling.retrain).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
