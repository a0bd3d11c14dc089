from __future__ import annotations

import enum
from datetime import date, datetime, time, timedelta
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

CONTACT_FLAGS = {
    ActivityType.CALL: "do_not_call",
    ActivityType.EMAIL: "do_not_email",
    ActivityType.LETTER: "do_not_mail",
    ActivityType.SMS: "do_not_text",
}
"""The debtor's contact preference that forbids each kind of outbound contact."""

CALLING_HOURS = (time(8), time(21))
"""When a call or a text may reach a debtor, in their own time zone: the FDCPA presumes
any time before 8 a.m. or after 9 p.m. inconvenient."""

TIMED_CONTACT = frozenset({ActivityType.CALL, ActivityType.SMS})
"""The contacts that :data:`CALLING_HOURS` bound."""


PROMISE_HORIZON = timedelta(days=365)
"""How far ahead of today a promise to pay may fall due."""


class PromiseToPay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: int
    due_on: date

    def due_date_refusal(self, now: datetime) -> str | None:
        """Why the promise cannot fall due when it says, if it cannot: it falls due from
        today, wherever the debtor is (so from yesterday's date in UTC, which some time
        zone is still in), to :data:`PROMISE_HORIZON` ahead."""
        today = now.date()
        if self.due_on < today - timedelta(days=1):
            return f"a promise falls due from today; {self.due_on} has passed"
        if self.due_on > today + PROMISE_HORIZON:
            return f"a promise falls due within {PROMISE_HORIZON.days} days of today"
        return None


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
