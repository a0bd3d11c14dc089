"""Import runs and placement writers on SQLAlchemy. The runs are read and changed on the
unit of work's connection, in its transaction; each batch of a placement writer is its own
transaction on a pooled connection: set-based merges on PostgreSQL, plain upserts on
SQLite."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast
from uuid import UUID

import msgspec
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from debtflow_adapters.batch_order import BatchOrder
from debtflow_adapters.persistence.statements import (
    first,
    insert_if_new,
    keyset_page,
    write_lock_on_sqlite,
)
from debtflow_adapters.persistence.tables import (
    UNFINISHED_UPLOAD,
    accounts,
    debtors,
    import_row_errors,
    import_runs,
)
from debtflow_core.domain.debtor import ContactPreferences, Phone
from debtflow_core.domain.imports import (
    ImportRowError,
    ImportRun,
    ImportStatus,
    currency_kept,
    superseded,
)
from debtflow_core.errors import Conflict, NotFound
from debtflow_core.ids import new_id
from debtflow_core.placement import PlacementRow
from debtflow_core.ports.import_runs import ImportRunRepository, RunPosition
from debtflow_core.ports.placement_writer import BatchOutcome, PlacementBatch, PlacementWriter

_RUN_COLUMNS = tuple(import_runs.c[name] for name in ImportRun.__struct_fields__)
_NO_CONTACT_LIMITS = msgspec.json.encode(ContactPreferences()).decode()


def _run(row: Row[Any]) -> ImportRun:
    values = dict(zip(ImportRun.__struct_fields__, row, strict=True))
    values["ignored_columns"] = tuple(values["ignored_columns"])
    values["status"] = ImportStatus(values["status"])
    return ImportRun(**values)


def _taken_over(run_id: UUID) -> Conflict:
    return Conflict(f"import run {run_id} was taken over by another attempt")


class SqlImportRunRepository(ImportRunRepository):
    """Import runs and their row errors in the ``import_runs`` and ``import_row_errors``
    tables, on the unit of work's connection."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add_or_get(self, run: ImportRun) -> ImportRun:
        values = msgspec.structs.asdict(run)
        values["ignored_columns"] = list(run.ignored_columns)
        values["progressed_at"] = run.created_at
        await insert_if_new(self._connection, import_runs, values)
        stored = await self.get_by_content(run.agency_id, run.sha256)
        assert stored is not None  # inserted now, or there before
        return stored

    async def _change(self, run_id: UUID, attempt: int, values: dict[str, Any]) -> ImportRun:
        # The UPDATE waits for a concurrent transaction that changes the row (a batch, a
        # takeover), then finds whether the attempt is still ``attempt``.
        changed = await self._connection.execute(
            sa.update(import_runs)
            .where(import_runs.c.id == run_id, import_runs.c.attempt == attempt)
            .values(values)
            .execution_options(preserve_rowcount=True)
        )
        row = (
            await self._connection.execute(
                sa.select(*_RUN_COLUMNS).where(import_runs.c.id == run_id)
            )
        ).first()
        if row is None:
            raise NotFound.of("import run", run_id)
        if changed.rowcount != 1:
            raise _taken_over(run_id)
        return _run(row)

    async def start(self, run_id: UUID, *, attempt: int, at: datetime) -> ImportRun:
        return await self._change(
            run_id,
            attempt,
            {
                "status": ImportStatus.RUNNING,
                "attempt": attempt + 1,
                "started_at": at,
                "progressed_at": at,
            },
        )

    async def finish(
        self,
        run_id: UUID,
        *,
        attempt: int,
        status: ImportStatus,
        at: datetime,
        ignored_columns: tuple[str, ...] = (),
        failure_reason: str | None = None,
    ) -> ImportRun:
        return await self._change(
            run_id,
            attempt,
            {
                "status": status,
                "finished_at": at,
                "progressed_at": at,
                "ignored_columns": list(ignored_columns),
                "failure_reason": failure_reason,
            },
        )

    async def reopen(self, run_id: UUID, *, attempt: int, anew: ImportRun) -> ImportRun:
        connection = self._connection
        await write_lock_on_sqlite(
            connection, import_runs, run_id, rewrite=import_runs.c.failure_reason
        )
        row = (
            await connection.execute(
                sa.select(*_RUN_COLUMNS).where(import_runs.c.id == run_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound.of("import run", run_id)
        failed = _run(row)
        if failed.attempt != attempt:
            raise _taken_over(run_id)
        if failed.status is not ImportStatus.FAILED:
            raise Conflict(f"import run {run_id} has not failed")
        run = failed.reopened_as(anew)
        values = msgspec.structs.asdict(run)
        values["ignored_columns"] = list(run.ignored_columns)
        await connection.execute(
            sa.update(import_runs).where(import_runs.c.id == run_id).values(values)
        )
        await connection.execute(
            sa.delete(import_row_errors).where(import_row_errors.c.run_id == run_id)
        )
        return run

    async def get(self, agency_id: UUID, run_id: UUID) -> ImportRun | None:
        return await self._one(import_runs.c.id == run_id, import_runs.c.agency_id == agency_id)

    async def get_by_content(self, agency_id: UUID, sha256: str) -> ImportRun | None:
        return await self._one(import_runs.c.agency_id == agency_id, import_runs.c.sha256 == sha256)

    async def _one(self, *conditions: sa.ColumnElement[bool]) -> ImportRun | None:
        statement = sa.select(*_RUN_COLUMNS).where(*conditions)
        return await first(self._connection, statement, _run)

    async def list(
        self,
        agency_id: UUID,
        *,
        after: RunPosition | None,
        limit: int,
        status: ImportStatus | None = None,
        file_source_id: UUID | None = None,
    ) -> list[ImportRun]:
        query = sa.select(*_RUN_COLUMNS).where(import_runs.c.agency_id == agency_id)
        if status is not None:
            query = query.where(import_runs.c.status == status)
        if file_source_id is not None:
            query = query.where(import_runs.c.file_source_id == file_source_id)
        statement = keyset_page(
            query,
            (import_runs.c.created_at, import_runs.c.id),
            None if after is None else (after.created_at, after.id),
            limit,
        )
        return [_run(row) for row in await self._connection.execute(statement)]

    async def claim_stalled(
        self, before: datetime, after: datetime, limit: int, *, at: datetime
    ) -> list[ImportRun]:
        c = import_runs.c
        # SKIP LOCKED passes over a run whose batch is being committed: it is progressing.
        # (SQLite has no row locks; its writers take turns.)
        stalled = (
            sa.select(c.id)
            .where(UNFINISHED_UPLOAD, c.created_at > after, c.progressed_at < before)
            .order_by(c.created_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            sa.update(import_runs)
            .where(c.id.in_(stalled))
            .values(progressed_at=at)
            .returning(*_RUN_COLUMNS)
        )
        runs = [_run(row) for row in await self._connection.execute(statement)]
        return sorted(runs, key=lambda run: (run.created_at, run.id))

    async def errors(
        self, run_id: UUID, *, after_line: int | None, limit: int
    ) -> list[ImportRowError]:
        c = import_row_errors.c
        statement = keyset_page(
            sa.select(c.line, c.column, c.reason, c.value).where(c.run_id == run_id),
            (c.line,),
            None if after_line is None else (after_line,),
            limit,
            descending=False,
        )
        return [
            ImportRowError(line=r.line, column=r.column, reason=r.reason, value=r.value)
            for r in await self._connection.execute(statement)
        ]


class _Refused(Exception):
    """The database refused the rows of a merge (not the connection failing)."""


class _Merged(NamedTuple):
    """What a merge did: accounts created, updated (superseded ones included), the
    (earlier line, line) of each account this run had written before, and the (line,
    currency, the account's currency) of each row left out for naming another currency
    than its existing account's."""

    created: int
    updated: int
    earlier: list[tuple[int, int]]
    refused: list[tuple[int, str, str]]


class _SqlPlacementWriter(PlacementWriter, ABC):
    """The batch protocol both databases share: stage the rows, wait for the run's batch
    before to end, fence the run, merge the rows (all at once, or one by one in savepoints
    once the database refused the whole), record the errors and counts, commit.

    Calls for one run may overlap, each on a connection of its own (an import holds two):
    a batch stages its rows while the one before merges, and merges once that one has
    committed.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._order = BatchOrder()

    async def write(self, batch: PlacementBatch) -> BatchOutcome:
        async with (
            self._order.turn(batch.run_id, batch.attempt) as my_turn,
            self._engine.begin() as connection,
        ):
            await self._prepare(connection)
            try:
                async with connection.begin_nested():
                    await self._stage(connection, batch.rows)
                    await my_turn()
                    return await self._apply(connection, batch, one_by_one=False)
            except _Refused:
                pass  # the savepoint's rollback emptied the staging table too
            await my_turn()
            return await self._apply(connection, batch, one_by_one=True)

    async def _apply(
        self, connection: AsyncConnection, batch: PlacementBatch, *, one_by_one: bool
    ) -> BatchOutcome:
        fenced = await connection.execute(
            sa.select(import_runs.c.id)
            .where(import_runs.c.id == batch.run_id, import_runs.c.attempt == batch.attempt)
            .with_for_update()
        )
        if fenced.first() is None:
            raise _taken_over(batch.run_id)
        failures: list[ImportRowError] = []
        merges: list[_Merged] = []
        if batch.rows and not one_by_one:
            merges.append(await self._merge(connection, batch, batch.rows))
        elif batch.rows:
            for row in batch.rows:
                try:
                    async with connection.begin_nested():
                        await self._stage(connection, [row])
                        merges.append(await self._merge(connection, batch, [row]))
                except _Refused as error:
                    failures.append(
                        ImportRowError(
                            line=row.line,
                            column=None,
                            reason=f"the database refused the row: {error}",
                            value=None,
                        )
                    )
        created = sum(merged.created for merged in merges)
        updated = sum(merged.updated for merged in merges)
        earlier = [pair for merged in merges for pair in merged.earlier]
        failures.extend(currency_kept(*row) for merged in merges for row in merged.refused)
        failures.extend(superseded(line, by) for line, by in earlier)
        errors = [*batch.errors, *failures]
        if errors:
            await connection.execute(
                sa.insert(import_row_errors),
                [{"run_id": batch.run_id, **msgspec.structs.asdict(e)} for e in errors],
            )
        await connection.execute(
            sa.update(import_runs)
            .where(import_runs.c.id == batch.run_id)
            .values(
                rows_read=import_runs.c.rows_read + batch.rows_read,
                rows_created=import_runs.c.rows_created + created,
                rows_updated=import_runs.c.rows_updated + updated - len(earlier),
                rows_failed=import_runs.c.rows_failed + len(errors),
                lines_done=batch.lines_done,
                progressed_at=batch.at,
            )
        )
        return BatchOutcome(
            created=created,
            updated=updated - len(earlier),
            failed=len(errors),
            failures=failures,
        )

    async def _prepare(self, connection: AsyncConnection) -> None:
        """Anything the merges of a transaction need first."""

    async def _stage(self, connection: AsyncConnection, rows: Sequence[PlacementRow]) -> None:
        """Hand ``rows`` to the database for the next merge, where it has a place for them."""

    @abstractmethod
    async def _merge(
        self, connection: AsyncConnection, batch: PlacementBatch, rows: Sequence[PlacementRow]
    ) -> _Merged:
        """Upsert ``rows``, which :meth:`_stage` was given, but those that would change the
        currency of an account this run did not create. Raises _Refused when the database
        refuses the rows."""


def _phones(row: PlacementRow) -> list[dict[str, str]]:
    return [msgspec.to_builtins(Phone(number=number)) for number in row.phones]


_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS placement_staging (
    line bigint NOT NULL,
    new_account uuid NOT NULL,
    new_debtor uuid NOT NULL,
    account_id text NOT NULL,
    original_creditor text NOT NULL,
    placed_balance bigint NOT NULL,
    currency text NOT NULL,
    charge_off_date date,
    first_delinquency_date date,
    itemization_date date,
    last_payment_date date,
    debtor_id text NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    date_of_birth date,
    phones text NOT NULL,
    emails text NOT NULL,
    address text
) ON COMMIT DELETE ROWS
"""
_STAGING_COLUMNS = (
    "line",
    "new_account",
    "new_debtor",
    "account_id",
    "original_creditor",
    "placed_balance",
    "currency",
    "charge_off_date",
    "first_delinquency_date",
    "itemization_date",
    "last_payment_date",
    "debtor_id",
    "first_name",
    "last_name",
    "date_of_birth",
    "phones",
    "emails",
    "address",
)
_STAGING_TYPES = (
    "int8",
    "uuid",
    "uuid",
    "text",
    "text",
    "int8",
    "text",
    "date",
    "date",
    "date",
    "date",
    "text",
    "text",
    "text",
    "date",
    "text",
    "text",
    "text",
)
_COPY = f"COPY placement_staging ({', '.join(_STAGING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"

# One statement: the debtors' upsert hands their ids to the accounts' upsert. ``found``
# reads the rows' existing accounts as they were before it (a statement sees one
# snapshot): one unique-index probe per row (OFFSET 0 keeps the planner, blind to the
# unanalysed staging table, from scanning the agency's accounts instead). From them,
# ``refused``: the rows that would move an account this run did not create to another
# currency, left out of both upserts; ``earlier``: the accounts this run already wrote from
# an earlier line, which a row not refused overwrites. ``xmax = 0`` marks a row inserted
# rather than updated.
_MERGE = f"""
WITH found AS (
    SELECT s.line, s.currency, a.currency AS kept, a.import_run_id, a.import_line,
        a.placed_by_run_id
    FROM placement_staging s
    CROSS JOIN LATERAL (
        SELECT currency, import_run_id, import_line, placed_by_run_id FROM accounts
        WHERE agency_id = %(agency)s AND external_id = s.account_id
        OFFSET 0
    ) a
), refused AS (
    SELECT line, currency, kept FROM found
    WHERE currency <> kept AND placed_by_run_id IS DISTINCT FROM %(run)s
), earlier AS (
    SELECT import_line AS line, line AS by_line FROM found f
    WHERE import_run_id = %(run)s AND NOT EXISTS (SELECT FROM refused r WHERE r.line = f.line)
), merged_debtors AS (
    INSERT INTO debtors AS d (
        id, agency_id, external_id, first_name, last_name, date_of_birth, phones, emails,
        address, contact_preferences, created_at, updated_at
    )
    SELECT DISTINCT ON (debtor_id)
        new_debtor, %(agency)s, debtor_id, first_name, last_name, date_of_birth,
        phones::jsonb, emails::jsonb, address::jsonb, '{_NO_CONTACT_LIMITS}'::jsonb,
        %(at)s, %(at)s
    FROM placement_staging s
    WHERE NOT EXISTS (SELECT FROM refused r WHERE r.line = s.line)
    ORDER BY debtor_id, line DESC
    ON CONFLICT (agency_id, external_id) DO UPDATE SET
        first_name = excluded.first_name,
        last_name = excluded.last_name,
        date_of_birth = excluded.date_of_birth,
        phones = excluded.phones,
        emails = excluded.emails,
        address = excluded.address,
        updated_at = excluded.updated_at
    RETURNING id, external_id
), merged_accounts AS (
    INSERT INTO accounts AS a (
        id, agency_id, debtor_id, external_id, original_creditor, currency, placed_balance,
        current_balance, charge_off_date, status, assigned_collector_id, placed_at,
        updated_at, first_delinquency_date, itemization_date, last_payment_date,
        import_run_id, import_line, placed_by_run_id
    )
    SELECT
        s.new_account, %(agency)s, d.id, s.account_id, s.original_creditor, s.currency,
        s.placed_balance, s.placed_balance, s.charge_off_date, 'active', NULL, %(at)s,
        %(at)s, s.first_delinquency_date, s.itemization_date, s.last_payment_date,
        %(run)s, s.line, %(run)s
    FROM placement_staging s
    JOIN merged_debtors d ON d.external_id = s.debtor_id
    WHERE NOT EXISTS (SELECT FROM refused r WHERE r.line = s.line)
    ON CONFLICT (agency_id, external_id) DO UPDATE SET
        debtor_id = excluded.debtor_id,
        original_creditor = excluded.original_creditor,
        currency = excluded.currency,
        current_balance = a.current_balance + excluded.placed_balance - a.placed_balance,
        placed_balance = excluded.placed_balance,
        charge_off_date = excluded.charge_off_date,
        first_delinquency_date = excluded.first_delinquency_date,
        itemization_date = excluded.itemization_date,
        last_payment_date = excluded.last_payment_date,
        import_run_id = excluded.import_run_id,
        import_line = excluded.import_line,
        updated_at = excluded.updated_at
    RETURNING xmax = 0 AS created
)
SELECT
    (SELECT count(*) FILTER (WHERE created) FROM merged_accounts),
    (SELECT count(*) FILTER (WHERE NOT created) FROM merged_accounts),
    (SELECT coalesce(array_agg(ARRAY[line, by_line]), '{{}}') FROM earlier),
    (SELECT coalesce(array_agg(ARRAY[line::text, currency, kept]), '{{}}') FROM refused)
"""


class PostgresPlacementWriter(_SqlPlacementWriter):
    """Per batch: binary COPY of the rows into a temporary staging table, then one merge
    statement (debtors, then accounts, ``INSERT … SELECT … ON CONFLICT DO UPDATE``).

    The batch commits without waiting for its WAL flush (``synchronous_commit = off``): a
    server crash may lose the last few batches' commits, but a batch and the run's progress
    commit together, so the rerun redoes exactly what was lost.
    """

    async def _prepare(self, connection: AsyncConnection) -> None:
        driver = await _driver(connection)
        async with driver.cursor() as cursor:
            await cursor.execute("SET LOCAL synchronous_commit = off")
            await cursor.execute(_STAGING)

    async def _stage(self, connection: AsyncConnection, rows: Sequence[PlacementRow]) -> None:
        driver = await _driver(connection)
        with _reported(_COPY):
            async with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
                copy.set_types(_STAGING_TYPES)
                for row in _staged(rows):
                    await copy.write_row(row)

    async def _merge(
        self, connection: AsyncConnection, batch: PlacementBatch, rows: Sequence[PlacementRow]
    ) -> _Merged:
        driver = await _driver(connection)
        with _reported(_MERGE):
            async with driver.cursor() as cursor:
                await cursor.execute(
                    _MERGE, {"agency": batch.agency_id, "run": batch.run_id, "at": batch.at}
                )
                created, updated, earlier, refused = cast(
                    tuple[int, int, list[list[int]], list[list[str]]], await cursor.fetchone()
                )
                if len(rows) < len(batch.rows):  # one by one: the next row stages alone
                    await cursor.execute("DELETE FROM placement_staging")
        return _Merged(
            created,
            updated,
            [(line, by) for line, by in earlier],
            [(int(line), currency, kept) for line, currency, kept in refused],
        )


@contextlib.contextmanager
def _reported(statement: str) -> Iterator[None]:
    """psycopg's errors as the writer reports them: rows the database refused as _Refused,
    anything else as the repositories' SQLAlchemy connections would (callers handle one
    kind)."""
    try:
        yield
    except (psycopg.DataError, psycopg.IntegrityError) as error:
        raise _Refused(_first_line(error)) from error
    except psycopg.Error as error:
        raise OperationalError(statement, None, error) from error


def _staged(rows: Iterable[PlacementRow]) -> Iterable[tuple[Any, ...]]:
    encode = msgspec.json.encode
    for row in rows:
        address = row.address()
        yield (
            row.line,
            new_id(),
            new_id(),
            row.account_id,
            row.original_creditor,
            row.placed_balance,
            row.currency,
            row.charge_off_date,
            row.first_delinquency_date,
            row.itemization_date,
            row.last_payment_date,
            row.debtor_id,
            row.first_name,
            row.last_name,
            row.date_of_birth,
            encode([Phone(number=number) for number in row.phones]).decode(),
            encode(row.emails).decode(),
            None if address is None else encode(address).decode(),
        )


async def _driver(connection: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    raw = await connection.get_raw_connection()
    return cast(psycopg.AsyncConnection[Any], raw.driver_connection)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class SqlitePlacementWriter(_SqlPlacementWriter):
    """Per batch: ``executemany`` upserts of the debtors, then of the accounts. SQLite is
    the embedded default for small installations, not the bulk path."""

    async def _merge(
        self, connection: AsyncConnection, batch: PlacementBatch, rows: Sequence[PlacementRow]
    ) -> _Merged:
        try:
            return await self._upsert(connection, batch, rows)
        except (IntegrityError, DataError) as error:
            raise _Refused(_first_line(error.orig)) from error

    async def _upsert(
        self, connection: AsyncConnection, batch: PlacementBatch, rows: Sequence[PlacementRow]
    ) -> _Merged:
        a = accounts.c
        existing = {
            r.external_id: r
            for r in await connection.execute(
                sa.select(
                    a.external_id, a.currency, a.import_run_id, a.import_line, a.placed_by_run_id
                )
                .where(a.agency_id == batch.agency_id)
                .where(a.external_id.in_([row.account_id for row in rows]))
            )
        }
        refused = []
        for row in rows:
            found = existing.get(row.account_id)
            if found and found.placed_by_run_id != batch.run_id and found.currency != row.currency:
                refused.append((row.line, row.currency, found.currency))
                del existing[row.account_id]  # an account named once in a batch
        if refused:
            left_out = {line for line, _, _ in refused}
            rows = [row for row in rows if row.line not in left_out]
            if not rows:
                return _Merged(0, 0, [], refused)
        latest = {row.debtor_id: row for row in rows}
        insert_debtor = sqlite.insert(debtors)
        await connection.execute(
            insert_debtor.on_conflict_do_update(
                index_elements=[debtors.c.agency_id, debtors.c.external_id],
                set_={
                    name: insert_debtor.excluded[name]
                    for name in (
                        "first_name",
                        "last_name",
                        "date_of_birth",
                        "phones",
                        "emails",
                        "address",
                        "updated_at",
                    )
                },
            ),
            [
                {
                    "id": new_id(),
                    "agency_id": batch.agency_id,
                    "external_id": row.debtor_id,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "date_of_birth": row.date_of_birth,
                    "phones": _phones(row),
                    "emails": list(row.emails),
                    "address": msgspec.to_builtins(row.address()),
                    "contact_preferences": msgspec.to_builtins(ContactPreferences()),
                    "created_at": batch.at,
                    "updated_at": batch.at,
                }
                for row in latest.values()
            ],
        )
        found = await connection.execute(
            sa.select(debtors.c.external_id, debtors.c.id)
            .where(debtors.c.agency_id == batch.agency_id)
            .where(debtors.c.external_id.in_(list(latest)))
        )
        debtor_ids = {external_id: id_ for external_id, id_ in found}
        insert_account = sqlite.insert(accounts)
        excluded = insert_account.excluded
        await connection.execute(
            insert_account.on_conflict_do_update(
                index_elements=[accounts.c.agency_id, accounts.c.external_id],
                set_={
                    "current_balance": accounts.c.current_balance
                    + excluded.placed_balance
                    - accounts.c.placed_balance,
                    **{
                        name: excluded[name]
                        for name in (
                            "debtor_id",
                            "original_creditor",
                            "currency",
                            "placed_balance",
                            "charge_off_date",
                            "first_delinquency_date",
                            "itemization_date",
                            "last_payment_date",
                            "import_run_id",
                            "import_line",
                            "updated_at",
                        )
                    },
                },
            ),
            [
                {
                    "id": new_id(),
                    "agency_id": batch.agency_id,
                    "debtor_id": debtor_ids[row.debtor_id],
                    "external_id": row.account_id,
                    "original_creditor": row.original_creditor,
                    "currency": row.currency,
                    "placed_balance": row.placed_balance,
                    "current_balance": row.placed_balance,
                    "charge_off_date": row.charge_off_date,
                    "status": "active",
                    "assigned_collector_id": None,
                    "placed_at": batch.at,
                    "updated_at": batch.at,
                    "first_delinquency_date": row.first_delinquency_date,
                    "itemization_date": row.itemization_date,
                    "last_payment_date": row.last_payment_date,
                    "import_run_id": batch.run_id,
                    "import_line": row.line,
                    "placed_by_run_id": batch.run_id,
                }
                for row in rows
            ],
        )
        earlier = [
            (existing[row.account_id].import_line, row.line)
            for row in rows
            if row.account_id in existing and existing[row.account_id].import_run_id == batch.run_id
        ]
        return _Merged(len(rows) - len(existing), len(existing), earlier, refused)


def make_placement_writer(engine: AsyncEngine) -> PlacementWriter:
    """The placement writer for ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return PostgresPlacementWriter(engine)
    return SqlitePlacementWriter(engine)
