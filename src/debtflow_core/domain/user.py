from __future__ import annotations

import enum
import re
from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.errors import ValidationFailed

# Deliberately loose: the mailbox is the final judge; this rejects what is surely wrong.
_EMAIL = re.compile(r"[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+")


EMAIL_TAKEN = "this email cannot be used for a new user"
"""Why a new user's email is refused when another user has it. Emails are unique across
the platform, so the holder may be in another agency: the answer neither names the email
nor says where it is taken, or an agency admin could find out who uses the platform."""


class Role(enum.StrEnum):
    AGENCY_ADMIN = "agency_admin"
    COLLECTOR = "collector"
    READONLY = "readonly"


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise ValidationFailed(
            f"{value!r} is not a role; use one of {choices}", field="role"
        ) from None


def normalize_email(email: str, *, field: str = "email") -> str:
    """Emails compare case-insensitively; we store them trimmed and lower-cased."""
    normalized = email.strip().lower()
    if len(normalized) > 254 or not _EMAIL.fullmatch(normalized):
        raise ValidationFailed(f"{email!r} is not an email address", field=field)
    return normalized


class User(msgspec.Struct, frozen=True, kw_only=True):
    """Someone who signs in to an agency. A collector is a user with the collector role."""

    id: UUID
    agency_id: UUID
    email: str
    full_name: str
    role: Role
    password_hash: str
    active: bool
    created_at: datetime

    @property
    def assignable(self) -> bool:
        """Accounts can be assigned to active collectors only."""
        return self.active and self.role is Role.COLLECTOR
