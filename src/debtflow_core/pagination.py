"""Keyset (cursor) pagination: stable orderings, opaque cursors, no offset scans."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

import msgspec

from debtflow_core.errors import ValidationFailed

T = TypeVar("T")
P = TypeVar("P", bound=msgspec.Struct)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a list; pass ``next_cursor`` back to get the next one (``None``: the end)."""

    items: list[T]
    next_cursor: str | None


def validate_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def encode_cursor(position: msgspec.Struct) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str, type_: type[P]) -> P:
    """Decode a cursor made by :func:`encode_cursor`; a forged or stale one is a 422, also
    when it decodes to a position no list could have ended at."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = msgspec.json.decode(raw, type=type_)
        for value in msgspec.structs.astuple(position):
            _check_storable(value)
    except (binascii.Error, ValueError, OverflowError, msgspec.DecodeError) as error:
        raise ValidationFailed("the cursor is not valid for this list", field="cursor") from error
    return position


def _check_storable(value: object) -> None:
    """Refuse what no stored row holds: a time without a UTC offset or out of range in UTC,
    an integer beyond 64 bits, a text with a NUL character (PostgreSQL stores none)."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError("a time without a UTC offset")
        value.astimezone(UTC)  # OverflowError outside the years 1-9999 in UTC
    elif isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise OverflowError("an integer beyond 64 bits")
    elif isinstance(value, str) and "\x00" in value:
        raise ValueError("a text with a NUL character")


def paginate(rows: list[T], limit: int, position_of: Callable[[T], msgspec.Struct]) -> Page[T]:
    """Build a page from ``limit + 1`` fetched rows: the extra row only says there is more."""
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    items = rows[:limit]
    return Page(items=items, next_cursor=encode_cursor(position_of(items[-1])))
