"""Small shared queries on the attributes, their classes and the image catalogue.

A name is matched without regard to case or extra spaces, after NFKC normalisation with control and
format characters (Unicode Cc and Cf: escape sequences, zero-width spaces, direction marks) taken out:
``(not a\u200b shoe)`` is the reserved not-a-shoe name, and ``ＮＩＫＥ`` is ``NIKE``. A class merged into
another is found as the class it was merged into, and is no longer listed.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import BRAND_ID, NOT_A_SHOE, Attribute, ClassChange, Image, ImportedLabel, LabelClass, Review
from shoelabel.errors import UserError
from shoelabel.manifest_files import NOT_ATTRIBUTES
from shoelabel.names import normal_name

MAX_CLASS_LENGTH = 120
MAX_ATTRIBUTE_LENGTH = 60
#: Names no attribute may take: the manifests' own columns, and the not-a-shoe answer.
RESERVED_ATTRIBUTE_NAMES = frozenset(NOT_ATTRIBUTES | {NOT_A_SHOE})


class ClassError(UserError, ValueError):
    """A class or attribute name that cannot be used, or one that is not there."""


def _clean(name: str, what: str, longest: int) -> str:
    cleaned = normal_name(name)
    if not cleaned:
        raise ClassError(f"A {what} name cannot be empty.")
    if len(cleaned) > longest:
        raise ClassError(f"{what.capitalize()} name {cleaned[:40]!r}... is longer than {longest} characters.")
    return cleaned


def clean_class_name(name: str) -> str:
    cleaned = _clean(name, "class", MAX_CLASS_LENGTH)
    if cleaned.lower() == NOT_A_SHOE.lower():
        raise ClassError(f"{NOT_A_SHOE!r} is not a class name: answer N (not a shoe) for such photos.")
    return cleaned


def clean_attribute_name(name: str) -> str:
    return _clean(name, "attribute", MAX_ATTRIBUTE_LENGTH).lower()


def new_attribute_name(name: str) -> str:
    """The cleaned name for a new (or renamed) attribute; :class:`ClassError` for a reserved one."""
    cleaned = clean_attribute_name(name)
    if cleaned in RESERVED_ATTRIBUTE_NAMES:
        reserved = ", ".join(sorted(RESERVED_ATTRIBUTE_NAMES))
        raise ClassError(
            f"{cleaned!r} cannot be an attribute name: manifests use it for their own column, or it is an answer "
            f"(reserved: {reserved}). Choose another name, e.g. {cleaned.strip('()').replace(' ', '_')}_label."
        )
    return cleaned


# --------------------------------------------------------------------------- attributes


def attributes(session: Session) -> list[Attribute]:
    """Every attribute, brand first, in their order."""
    return list(session.scalars(select(Attribute).order_by(Attribute.position, Attribute.id)))


def find_attribute(session: Session, name: str) -> Attribute | None:
    cleaned = clean_attribute_name(name)
    return session.scalar(select(Attribute).where(func.lower(Attribute.name) == cleaned))


def require_attribute(session: Session, name: str) -> Attribute:
    attribute = find_attribute(session, name)
    if attribute is None:
        known = ", ".join(a.name for a in attributes(session))
        raise ClassError(f"Unknown attribute {name!r}. Known attributes: {known}. Add it with --add-attribute.")
    return attribute


def get_or_create_attribute(session: Session, name: str) -> Attribute:
    """The attribute called ``name``, added (last in order) if there is none. Call it in a write session."""
    attribute = find_attribute(session, name)
    if attribute is None:
        last = session.scalar(select(func.max(Attribute.position))) or 0
        attribute = Attribute(name=new_attribute_name(name), position=last + 1)
        session.add(attribute)
        session.flush()
    return attribute


# --------------------------------------------------------------------------- classes


def find_class(session: Session, name: str, attribute_id: int = BRAND_ID) -> LabelClass | None:
    """The class called ``name`` (now, or before a rename) of the attribute: the one it was merged into, if it was."""
    cleaned = clean_class_name(name).lower()
    found = session.scalar(
        select(LabelClass).where(LabelClass.attribute_id == attribute_id, func.lower(LabelClass.name) == cleaned)
    )
    if found is None:  # a name it had before a rename (a model trained before it still says so)
        renamed = select(ClassChange.class_id).where(
            ClassChange.attribute_id == attribute_id,
            ClassChange.kind == "rename",
            func.lower(ClassChange.old_name) == cleaned,
        )
        found = session.scalar(select(LabelClass).where(LabelClass.id.in_(renamed)).limit(1))
    if found is not None and found.merged_into_id is not None:
        return session.get(LabelClass, found.merged_into_id)
    return found


def get_or_create_class(session: Session, name: str, attribute_id: int = BRAND_ID) -> LabelClass:
    """The class called ``name`` (in any case), added if there is none.

    Call it in a write session (``session_scope(write=True)``): the writers' lock makes the look-up
    and the insert one step, so two processes adding ``Nike`` and ``nike`` at once make one class.
    """
    label_class = find_class(session, name, attribute_id)
    if label_class is None:
        label_class = LabelClass(name=clean_class_name(name), attribute_id=attribute_id)
        session.add(label_class)
        session.flush()
    return label_class


def require_class(session: Session, name: str, attribute_id: int = BRAND_ID) -> LabelClass:
    label_class = find_class(session, name, attribute_id)
    if label_class is None:
        attribute = session.get(Attribute, attribute_id)
        what = attribute.name if attribute else "class"
        known = ", ".join(class_names(session, attribute_id)) or "none yet"
        raise ClassError(f"Unknown {what} {name!r}. Known {what} classes: {known}.")
    return label_class


def class_names(session: Session, attribute_id: int = BRAND_ID) -> list[str]:
    """The attribute's classes in use (merged ones are not), sorted by name."""
    query = select(LabelClass.name).where(
        LabelClass.attribute_id == attribute_id, LabelClass.merged_into_id.is_(None), LabelClass.name != NOT_A_SHOE
    )
    return list(session.scalars(query.order_by(LabelClass.name)))


def prediction_class(session: Session, name: str, attribute_id: int = BRAND_ID) -> LabelClass:
    """The class a stored prediction names: one of the attribute's, or the brand models' rejection class
    (:data:`NOT_A_SHOE`, learnt from the "not a shoe" answers; kept out of every list of classes)."""
    if name == NOT_A_SHOE:
        found = session.scalar(
            select(LabelClass).where(LabelClass.attribute_id == attribute_id, LabelClass.name == NOT_A_SHOE)
        )
        if found is None:
            found = LabelClass(name=NOT_A_SHOE, attribute_id=attribute_id)
            session.add(found)
            session.flush()
        return found
    return get_or_create_class(session, name, attribute_id)


def image_by_hash(session: Session, sha256: str) -> Image | None:
    return session.scalar(select(Image).where(Image.sha256 == sha256))


def labelled_attributes(session: Session) -> list[Attribute]:
    """The attributes some photo has a class of (imported or answered), brand first: what rounds train."""
    used = select(ImportedLabel.attribute_id).union(
        select(Review.attribute_id).where(Review.class_id.is_not(None), Review.undone_at.is_(None))
    )
    ids = set(session.scalars(used))
    return [a for a in attributes(session) if a.id in ids]
