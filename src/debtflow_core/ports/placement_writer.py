from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.imports import ImportRowError
from debtflow_core.placement import PlacementRow


class PlacementBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A slice of a placement file for one run: its valid ``rows`` (distinct account ids;
    several may share a debtor), the ``errors`` its bad rows gave, how many rows it read,
    and ``lines_done``, the file's last line it covers."""

    run_id: UUID
    attempt: int
    agency_id: UUID
    rows: list[PlacementRow]
    errors: list[ImportRowError]
    rows_read: int
    lines_done: int
    at: datetime


class BatchOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one batch did: accounts ``created`` and ``updated``, and the ``failures`` the
    store found (rows it refused, earlier rows of the run superseded by a row of this
    batch). ``failed`` counts those and the batch's own errors."""

    created: int
    updated: int
    failed: int
    failures: list[ImportRowError]


class PlacementWriter(Protocol):
    """Writes placement batches: debtors and accounts upserted by (agency, external id).

    One call is one transaction. Calls for one attempt at a run may overlap: they commit in
    the order they began running, each once the one before has, and a call begun while
    the one before was under way raises without writing if that one fails.

    It upserts each row's debtor (keyed by ``debtor_id``; for rows sharing a debtor, the
    last row's fields win) and account (keyed by ``account_id``), stores the batch's errors
    and failures against the run, adds the counts to the run and moves its ``lines_done`` to
    the batch's. A created debtor gets no contact limits; an updated one keeps them. An
    updated account is re-linked to the row's debtor and takes the row's creditor, balance
    and dates; its current balance moves by exactly as much as its placed balance
    changed, unclamped: payments taken, and the holds of pending ones, stay taken, so a hold
    given back later lands on the new balance, and a balance below zero is a credit owed to
    the debtor, as after an overpayment. Its status, collector and placement time stay.

    An account this run already wrote from an earlier line is overwritten and counted once:
    the earlier line becomes a failure ("superseded"). A row that names an account this run
    did not create (another import or the API made it, even if this run has updated it
    since), in another currency than that account's, writes nothing (not its debtor either)
    and fails (:func:`~debtflow_core.domain.imports.currency_kept`): an account's money is
    counted in one currency. If the store refuses the batch as a whole, each row is retried
    on its own so that only the guilty rows fail. Raises
    :class:`~debtflow_core.errors.Conflict`, writing nothing, when the run's attempt is no
    longer ``batch.attempt``.
    """

    async def write(self, batch: PlacementBatch) -> BatchOutcome: ...
