"""Checks on free-text input shared by the use cases."""

from __future__ import annotations

from debtflow_core.errors import ValidationFailed


def require_text(value: str, *, field: str, max_length: int = 200) -> str:
    """Return ``value`` trimmed; it must be non-blank and at most ``max_length`` characters."""
    stripped = value.strip()
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
