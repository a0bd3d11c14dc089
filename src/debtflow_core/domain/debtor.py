from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

import msgspec


class PhoneKind(enum.StrEnum):
    MOBILE = "mobile"
    HOME = "home"
    WORK = "work"
    OTHER = "other"


class Phone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    number: str
    kind: PhoneKind = PhoneKind.OTHER


class PostalAddress(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A mailing address. ``time_zone`` is an IANA name; it decides when calling is allowed."""

    line1: str
    line2: str | None = None
    city: str
    state: str
    postal_code: str
    country: str = "US"
    time_zone: str | None = None


class ContactPreferences(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Do-not-contact flags. ``cease_communication`` stops every outbound contact."""

    do_not_call: bool = False
    do_not_email: bool = False
    do_not_text: bool = False
    do_not_mail: bool = False
    cease_communication: bool = False


class Debtor(msgspec.Struct, frozen=True, kw_only=True):
    """A person who owes one or more placed accounts."""

    id: UUID
    agency_id: UUID
    external_id: str | None
    first_name: str
    last_name: str
    date_of_birth: date | None
    phones: tuple[Phone, ...]
    emails: tuple[str, ...]
    address: PostalAddress | None
    contact_preferences: ContactPreferences
    created_at: datetime
    updated_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"
