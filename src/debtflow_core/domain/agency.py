from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.errors import ValidationFailed

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def validate_slug(slug: str) -> str:
    """Slugs name agencies in URLs and on the command line: lower-case letters, digits, dashes."""
    if not _SLUG.fullmatch(slug):
        raise ValidationFailed(
            "a slug is 1-63 lower-case letters, digits or inner dashes", field="slug"
        )
    return slug


class Agency(msgspec.Struct, frozen=True, kw_only=True):
    """A collection agency: the tenant. Nothing ever crosses from one agency to another.

    ``allow_overpayment`` lets a payment exceed an account's balance (a credit balance).
    """

    id: UUID
    slug: str
    name: str
    created_at: datetime
    allow_overpayment: bool = False
