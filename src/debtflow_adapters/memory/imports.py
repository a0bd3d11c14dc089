"""The placement writer, in memory, over an :class:`InMemoryStore` (whose unit of work
holds the import runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

import msgspec

from debtflow_adapters.batch_order import BatchOrder
from debtflow_adapters.memory.unit_of_work import InMemoryStore
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.debtor import ContactPreferences, Debtor, Phone
from debtflow_core.domain.imports import ImportRowError, currency_kept, superseded
from debtflow_core.errors import Conflict
from debtflow_core.ids import new_id
from debtflow_core.placement import PlacementRow
from debtflow_core.ports.placement_writer import BatchOutcome, PlacementBatch, PlacementWriter


class PlacementDates(msgspec.Struct, frozen=True):
    """The placement dates an account has beyond its entity's fields."""

    first_delinquency_date: date | None
    itemization_date: date | None
    last_payment_date: date | None


@dataclass
class InMemoryImportStore:
    """The accounts' import provenance, which the in-memory placement writer keeps beside
    an :class:`InMemoryStore`. Make one per store.

    ``provenance`` holds the run and line that last wrote an account, ``placed_by`` the run
    that created it: the only run that may change its currency."""

    provenance: dict[UUID, tuple[UUID, int]] = field(default_factory=dict)
    placed_by: dict[UUID, UUID] = field(default_factory=dict)
    dates: dict[UUID, PlacementDates] = field(default_factory=dict)


class InMemoryPlacementWriter(PlacementWriter):
    """Writes placement batches into an :class:`InMemoryStore`. A batch applies at once
    (nothing else runs in between), so it is all or nothing like a transaction; the
    in-memory store refuses no row. It writes to the store's committed runs and row errors,
    as a transaction of its own would. Each batch looks through the agency's debtors and
    accounts, which suits tests and small embedded stores, not files of millions of rows."""

    def __init__(self, store: InMemoryStore, imports: InMemoryImportStore) -> None:
        self._store = store
        self._imports = imports
        self._order = BatchOrder()

    async def write(self, batch: PlacementBatch) -> BatchOutcome:
        async with self._order.turn(batch.run_id, batch.attempt) as my_turn:
            await my_turn()
            return self._apply(batch)

    def _apply(self, batch: PlacementBatch) -> BatchOutcome:
        run = self._store.import_runs.get(batch.run_id)
        if run is None or run.attempt != batch.attempt:
            raise Conflict(f"import run {batch.run_id} was taken over by another attempt")
        debtors = {
            d.external_id: d
            for d in self._store.debtors.values()
            if d.agency_id == batch.agency_id and d.external_id is not None
        }
        accounts = {
            a.external_id: a
            for a in self._store.accounts.values()
            if a.agency_id == batch.agency_id
        }
        failures: list[ImportRowError] = []
        rows = []
        for row in batch.rows:
            existing = accounts.get(row.account_id)
            if existing is None or existing.currency == row.currency:
                rows.append(row)
            elif self._imports.placed_by.get(existing.id) == batch.run_id:
                rows.append(row)  # an account this run created: the later line wins
            else:
                failures.append(currency_kept(row.line, row.currency, existing.currency))
        for row in rows:
            debtor = _debtor(row, debtors.get(row.debtor_id), batch)
            debtors[row.debtor_id] = debtor
            self._store.debtors[debtor.id] = debtor
        created = updated = 0
        for row in rows:
            existing = accounts.get(row.account_id)
            account = _account(row, existing, debtors[row.debtor_id].id, batch)
            self._store.accounts[account.id] = account
            origin = self._imports.provenance.get(account.id) if existing else None
            if existing is None:
                created += 1
                self._imports.placed_by[account.id] = batch.run_id
            elif origin is not None and origin[0] == batch.run_id:
                failures.append(superseded(origin[1], row.line))
            else:
                updated += 1
            self._imports.provenance[account.id] = (batch.run_id, row.line)
            self._imports.dates[account.id] = PlacementDates(
                row.first_delinquency_date, row.itemization_date, row.last_payment_date
            )
        errors = self._store.import_row_errors.setdefault(batch.run_id, {})
        for error in (*batch.errors, *failures):
            errors[error.line] = error
        failed = len(batch.errors) + len(failures)
        self._store.import_runs[run.id] = msgspec.structs.replace(
            run,
            rows_read=run.rows_read + batch.rows_read,
            rows_created=run.rows_created + created,
            rows_updated=run.rows_updated + updated,
            rows_failed=run.rows_failed + failed,
            lines_done=batch.lines_done,
            progressed_at=batch.at,
        )
        return BatchOutcome(created=created, updated=updated, failed=failed, failures=failures)


def _debtor(row: PlacementRow, existing: Debtor | None, batch: PlacementBatch) -> Debtor:
    return Debtor(
        id=existing.id if existing else new_id(),
        agency_id=batch.agency_id,
        external_id=row.debtor_id,
        first_name=row.first_name,
        last_name=row.last_name,
        date_of_birth=row.date_of_birth,
        phones=tuple(Phone(number=number) for number in row.phones),
        emails=row.emails,
        address=row.address(),
        contact_preferences=existing.contact_preferences if existing else ContactPreferences(),
        created_at=existing.created_at if existing else batch.at,
        updated_at=batch.at,
    )


def _account(
    row: PlacementRow, existing: Account | None, debtor_id: UUID, batch: PlacementBatch
) -> Account:
    current = row.placed_balance
    if existing is not None:
        current = existing.current_balance + row.placed_balance - existing.placed_balance
    return Account(
        id=existing.id if existing else new_id(),
        agency_id=batch.agency_id,
        debtor_id=debtor_id,
        external_id=row.account_id,
        original_creditor=row.original_creditor,
        currency=row.currency,
        placed_balance=row.placed_balance,
        current_balance=current,
        charge_off_date=row.charge_off_date,
        status=existing.status if existing else AccountStatus.ACTIVE,
        assigned_collector_id=existing.assigned_collector_id if existing else None,
        placed_at=existing.placed_at if existing else batch.at,
        updated_at=batch.at,
    )
