"""Small shared queries on the brand set and the image catalogue."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Brand, Image
from shoelabel.errors import UserError

MAX_BRAND_LENGTH = 120


class BrandError(UserError, ValueError):
    """A brand name that cannot be used, or one that is not in the brand set."""


def clean_brand_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise BrandError("A brand name cannot be empty.")
    if len(cleaned) > MAX_BRAND_LENGTH:
        raise BrandError(f"Brand name {cleaned[:40]!r}... is longer than {MAX_BRAND_LENGTH} characters.")
    return cleaned


def find_brand(session: Session, name: str) -> Brand | None:
    """The brand called ``name``, matched without regard to case or extra spaces."""
    cleaned = clean_brand_name(name)
    return session.scalar(select(Brand).where(func.lower(Brand.name) == cleaned.lower()))


def get_or_create_brand(session: Session, name: str) -> Brand:
    """The brand called ``name`` (in any case), added if there is none.

    Call it in a write session (``session_scope(write=True)``): the writers' lock makes the look-up
    and the insert one step, so two processes adding ``Nike`` and ``nike`` at once make one brand.
    """
    brand = find_brand(session, name)
    if brand is None:
        brand = Brand(name=clean_brand_name(name))
        session.add(brand)
        session.flush()
    return brand


def require_brand(session: Session, name: str) -> Brand:
    brand = find_brand(session, name)
    if brand is None:
        known = ", ".join(sorted(session.scalars(select(Brand.name)))) or "none yet"
        raise BrandError(f"Unknown brand {name!r}. Known brands: {known}.")
    return brand


def brand_names(session: Session) -> list[str]:
    return list(session.scalars(select(Brand.name).order_by(Brand.name)))


def image_by_hash(session: Session, sha256: str) -> Image | None:
    return session.scalar(select(Image).where(Image.sha256 == sha256))
