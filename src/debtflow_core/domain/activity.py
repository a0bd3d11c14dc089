from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

import msgspec


class ActivityType(enum.StrEnum):
    CALL = "call"
    EMAIL = "email"
    LETTER = "letter"
    SMS = "sms"
    NOTE = "note"
    PROMISE_TO_PAY = "promise_to_pay"
    DISPUTE = "dispute"
    CEASE_COMMUNICATION = "cease_communication"


# Activities that reach out to the debtor; a cease-communication request forbids them.
OUTBOUND_CONTACT = frozenset(
    {ActivityType.CALL, ActivityType.EMAIL, ActivityType.LETTER, ActivityType.SMS}
)


class PromiseToPay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: int
    due_on: date


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """Something that happened on an account: a contact attempt, a note, a promise, a dispute."""

    id: UUID
    agency_id: UUID
    account_id: UUID
    type: ActivityType
    outcome: str | None
    note: str | None
    promise: PromiseToPay | None
    actor_id: UUID | None
    occurred_at: datetime
