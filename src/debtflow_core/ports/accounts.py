from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.account import Account, AccountStatus


class AccountSort(enum.StrEnum):
    NEWEST = "newest"  # placed_at, id descending
    BALANCE_DESC = "balance_desc"  # current_balance, id descending
    BALANCE_ASC = "balance_asc"  # current_balance, id ascending


class AccountPosition(msgspec.Struct, frozen=True, kw_only=True):
    """Where a page of accounts ended: the sort key of its last account and its id."""

    sort: AccountSort
    id: UUID
    placed_at: datetime | None = None
    balance: int | None = None


class AccountQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Accounts of one agency. Every filter that is set must hold (they combine with AND).

    ``text`` matches anywhere in the debtor's "first last" name or the account's external
    id, case-insensitively as in a :class:`~debtflow_core.ports.debtors.DebtorQuery`.
    ``unassigned`` keeps only accounts with no collector. Balances bound
    ``current_balance`` inclusively.
    """

    agency_id: UUID
    status: AccountStatus | None = None
    collector_id: UUID | None = None
    unassigned: bool = False
    debtor_id: UUID | None = None
    min_balance: int | None = None
    max_balance: int | None = None
    text: str | None = None
    sort: AccountSort = AccountSort.NEWEST
    after: AccountPosition | None = None
    limit: int = 50


class AccountRepository(Protocol):
    """Accounts. ``add`` raises Conflict for an external id already used in the agency."""

    async def add(self, account: Account) -> None: ...

    async def get(self, id_: UUID) -> Account | None: ...

    async def lock(self, id_: UUID) -> Account | None:
        """The account, held until the transaction ends (``SELECT … FOR UPDATE``): two
        transactions that change one account take turns, and the second reads what the
        first left, so a status change is checked against the status it moves from and
        no update writes back an assignment or status another one just saved."""
        ...

    async def get_by_external_id(self, agency_id: UUID, external_id: str) -> Account | None: ...

    async def update(self, account: Account) -> None:
        """Save status, assignment, creditor and dates. Read the account in the same
        transaction under its row lock (:meth:`lock`, or after :meth:`adjust_balance`,
        which takes it), or this writes back what another transaction just changed.
        Balances are never written here: they change only through atomic balance
        operations, so no update can lose one."""
        ...

    async def list(self, query: AccountQuery) -> list[Account]:
        """Up to ``query.limit`` accounts after ``query.after``, in ``query.sort`` order."""
        ...

    async def release_collector(
        self, agency_id: UUID, collector_id: UUID, *, at: datetime
    ) -> list[Account]:
        """Unassign every account of ``agency_id`` assigned to ``collector_id``, in one
        atomic step that stamps ``updated_at`` with ``at``, and return those accounts as
        they are now. Their rows stay write-locked until the transaction ends, so no other
        change to them comes between."""
        ...

    async def adjust_balance(self, id_: UUID, delta: int, *, floor: int | None = 0) -> int | None:
        """Add ``delta`` (negative to take) to the current balance in one atomic step and
        return the new balance; change nothing and return ``None`` if the balance would end
        below ``floor`` (``None``: no floor). Concurrent adjustments never lose one another."""
        ...
