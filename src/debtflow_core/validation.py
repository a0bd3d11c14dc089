"""Checks on input shared by the use cases: free text and points in time."""

from __future__ import annotations

from datetime import UTC, datetime

from debtflow_core.errors import ValidationFailed


def refuse_nul(value: str, *, field: str) -> str:
    """Return ``value`` if it has no NUL character: no name, note or code has one, and
    PostgreSQL cannot store one in text."""
    if "\x00" in value:
        raise ValidationFailed("must not contain NUL characters", field=field)
    return value


def require_text(value: str, *, field: str, max_length: int = 200) -> str:
    """Return ``value`` trimmed; it must be non-blank, without NUL characters and at most
    ``max_length`` characters."""
    stripped = refuse_nul(value, field=field).strip()
    if not stripped:
        raise ValidationFailed("must not be blank", field=field)
    if len(stripped) > max_length:
        raise ValidationFailed(f"must be at most {max_length} characters", field=field)
    return stripped


def optional_text(value: str | None, *, field: str, max_length: int = 2000) -> str | None:
    """Like :func:`require_text`, but ``None`` and blank strings become ``None``."""
    if value is None or not value.strip():
        return None
    return require_text(value, field=field, max_length=max_length)


def require_utc(moment: datetime, *, field: str) -> datetime:
    """Return ``moment`` in UTC; it must have a UTC offset and fall within the years 1-9999
    once in UTC (``0001-01-01T00:00+01:00`` does not)."""
    if moment.tzinfo is None:
        raise ValidationFailed("times need a time zone (UTC offset)", field=field)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed("the time is out of range", field=field) from None
