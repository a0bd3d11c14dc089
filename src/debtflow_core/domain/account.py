from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

import msgspec

from debtflow_core.errors import Conflict


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    DISPUTED = "disputed"
    PAID_IN_FULL = "paid_in_full"
    SETTLED = "settled"
    CLOSED = "closed"
    RECALLED = "recalled"


COLLECTING = frozenset({AccountStatus.ACTIVE, AccountStatus.DISPUTED})
"""The statuses of an account still being collected: it takes payments and promises."""

_S = AccountStatus
# Recalled accounts went back to the creditor: final. Paid, settled and closed accounts can
# only be reopened (a refunded payment or a broken settlement puts them back to work).
ALLOWED_TRANSITIONS: dict[AccountStatus, frozenset[AccountStatus]] = {
    _S.ACTIVE: frozenset({_S.DISPUTED, _S.PAID_IN_FULL, _S.SETTLED, _S.CLOSED, _S.RECALLED}),
    _S.DISPUTED: frozenset({_S.ACTIVE, _S.PAID_IN_FULL, _S.SETTLED, _S.CLOSED, _S.RECALLED}),
    _S.PAID_IN_FULL: frozenset({_S.ACTIVE}),
    _S.SETTLED: frozenset({_S.ACTIVE}),
    _S.CLOSED: frozenset({_S.ACTIVE}),
    _S.RECALLED: frozenset(),
}


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A debt placed with the agency by a creditor. Balances are minor units of ``currency``."""

    id: UUID
    agency_id: UUID
    debtor_id: UUID
    external_id: str
    original_creditor: str
    currency: str
    placed_balance: int
    current_balance: int
    charge_off_date: date | None
    status: AccountStatus
    assigned_collector_id: UUID | None
    placed_at: datetime
    updated_at: datetime

    def transition_to(self, status: AccountStatus, *, at: datetime) -> Account:
        """Return this account in ``status``; raise :class:`Conflict` for a forbidden move."""
        if status not in ALLOWED_TRANSITIONS[self.status]:
            raise Conflict(f"an account cannot go from {self.status} to {status}")
        if status == AccountStatus.PAID_IN_FULL and self.current_balance > 0:
            raise Conflict("an account is paid in full only when nothing is owed on it")
        return msgspec.structs.replace(self, status=status, updated_at=at)
