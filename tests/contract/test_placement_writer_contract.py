"""The PlacementWriter contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.debtor import ContactPreferences, Phone, PostalAddress
from debtflow_core.domain.imports import ImportRowError, ImportRun, currency_kept, superseded
from debtflow_core.errors import Conflict
from debtflow_core.placement import PlacementRow
from debtflow_core.ports.accounts import AccountQuery
from debtflow_core.ports.placement_writer import PlacementBatch
from tests.support.imports import STORES, T0, ImportPorts, import_ports, new_run, placement_row


@pytest.fixture(params=STORES)
def ports(request: pytest.FixtureRequest) -> ImportPorts:
    return import_ports(request, request.param)


async def started_run(ports: ImportPorts, sha256: str = "a" * 64) -> ImportRun:
    agency = await ports.agency(f"agency-{sha256[0]}")
    run = await ports.runs.add_or_get(new_run(agency.id, sha256=sha256))
    return await ports.runs.start(run.id, attempt=0, at=T0)


def batch(
    run: ImportRun,
    rows: list[PlacementRow],
    errors: list[ImportRowError] = (),
    *,
    minutes: int = 0,
) -> PlacementBatch:
    lines = [r.line for r in rows] + [e.line for e in errors]
    return PlacementBatch(
        run_id=run.id,
        attempt=run.attempt,
        agency_id=run.agency_id,
        rows=rows,
        errors=list(errors),
        rows_read=len(lines),
        lines_done=max(lines),
        at=T0 + timedelta(minutes=minutes),
    )


async def accounts_of(ports: ImportPorts, run: ImportRun):
    async with ports.uow() as uow:
        found = await uow.accounts.list(AccountQuery(agency_id=run.agency_id, limit=200))
        debtors = {a.debtor_id: await uow.debtors.get(a.debtor_id) for a in found}
    return {a.external_id: a for a in found}, debtors


async def test_new_debtors_and_accounts_get_time_ordered_ids(ports):
    run = await started_run(ports)
    await ports.writer.write(batch(run, [placement_row(2, "A-1", debtor_id="D-1")]))
    await ports.writer.write(batch(run, [placement_row(3, "A-2", debtor_id="D-2")], minutes=1))

    accounts, _ = await accounts_of(ports, run)
    first, second = accounts["A-1"], accounts["A-2"]
    assert {first.id.version, first.debtor_id.version, second.id.version} == {7}
    # The ids' leading 48 bits are milliseconds: a later batch's rows sort after.
    assert first.id.int >> 80 <= second.id.int >> 80
    assert first.debtor_id.int >> 80 <= second.debtor_id.int >> 80


async def test_new_rows_create_debtors_and_accounts(ports):
    run = await started_run(ports)
    rows = [
        placement_row(2, "A-1", charge_off_date=date(2024, 3, 1), placed_balance=10_050),
        placement_row(3, "A-2", debtor_id="D-shared"),
        placement_row(4, "A-3", debtor_id="D-shared", first_name="Grace"),
    ]

    outcome = await ports.writer.write(batch(run, rows))

    assert (outcome.created, outcome.updated, outcome.failed) == (3, 0, 0)
    accounts, debtors = await accounts_of(ports, run)
    first = accounts["A-1"]
    assert (first.placed_balance, first.current_balance) == (10_050, 10_050)
    assert first.charge_off_date == date(2024, 3, 1)
    assert first.status == AccountStatus.ACTIVE
    assert first.placed_at == T0
    assert accounts["A-2"].debtor_id == accounts["A-3"].debtor_id
    shared = debtors[accounts["A-2"].debtor_id]
    assert shared.first_name == "Grace"
    assert shared.external_id == "D-shared"
    assert shared.phones == (Phone(number="+1 512 555 0100"),)
    assert shared.address == PostalAddress(
        line1="1 Main St", city="Austin", state="TX", postal_code="78701"
    )
    assert shared.contact_preferences == ContactPreferences()
    stored = await ports.runs.get(run.agency_id, run.id)
    assert (stored.rows_read, stored.rows_created, stored.lines_done) == (3, 3, 4)


async def test_an_existing_account_is_updated_keeping_its_payments(ports):
    first_run = await started_run(ports)
    await ports.writer.write(batch(first_run, [placement_row(2, "A-1", placed_balance=10_000)]))
    async with ports.uow() as uow:
        account = (await uow.accounts.list(AccountQuery(agency_id=first_run.agency_id)))[0]
        await uow.accounts.adjust_balance(account.id, -4_000)
        await uow.commit()
    second = await ports.runs.add_or_get(new_run(first_run.agency_id, sha256="c" * 64))
    second = await ports.runs.start(second.id, attempt=0, at=T0)

    outcome = await ports.writer.write(
        batch(
            second,
            [placement_row(2, "A-1", placed_balance=12_500, original_creditor="Contoso")],
            minutes=5,
        )
    )

    assert (outcome.created, outcome.updated, outcome.failed) == (0, 1, 0)
    accounts, _ = await accounts_of(ports, first_run)
    updated = accounts["A-1"]
    assert (updated.placed_balance, updated.current_balance) == (12_500, 8_500)
    assert updated.original_creditor == "Contoso"
    assert updated.placed_at == T0
    assert updated.updated_at == T0 + timedelta(minutes=5)


async def replace_account(
    ports: ImportPorts, first_run: ImportRun, placed_balance: int
) -> tuple[int, int]:
    """Place A-1 again, at ``placed_balance``, from a second run; its placed and current
    balances after."""
    second = await ports.runs.add_or_get(new_run(first_run.agency_id, sha256="c" * 64))
    second = await ports.runs.start(second.id, attempt=0, at=T0)
    await ports.writer.write(
        batch(second, [placement_row(2, "A-1", placed_balance=placed_balance)], minutes=5)
    )
    accounts, _ = await accounts_of(ports, first_run)
    return accounts["A-1"].placed_balance, accounts["A-1"].current_balance


async def test_a_hold_given_back_after_a_re_placement_lands_on_the_new_balance(ports):
    first_run = await started_run(ports)
    await ports.writer.write(batch(first_run, [placement_row(2, "A-1", placed_balance=10_000)]))
    async with ports.uow() as uow:
        account = (await uow.accounts.list(AccountQuery(agency_id=first_run.agency_id)))[0]
        await uow.accounts.adjust_balance(account.id, -10_000)  # a pending payment's hold
        await uow.commit()

    assert await replace_account(ports, first_run, 5_000) == (5_000, -5_000)

    async with ports.uow() as uow:  # the payment declined: its hold given back
        assert await uow.accounts.adjust_balance(account.id, 10_000, floor=None) == 5_000
        await uow.commit()


async def test_an_account_re_placed_below_what_was_paid_shows_a_credit(ports):
    first_run = await started_run(ports)
    await ports.writer.write(batch(first_run, [placement_row(2, "A-1", placed_balance=10_000)]))
    async with ports.uow() as uow:
        account = (await uow.accounts.list(AccountQuery(agency_id=first_run.agency_id)))[0]
        await uow.accounts.adjust_balance(account.id, -6_000)
        await uow.commit()

    assert await replace_account(ports, first_run, 3_000) == (3_000, -3_000)


async def test_an_account_named_again_by_the_same_run_supersedes_the_earlier_line(ports):
    run = await started_run(ports)
    await ports.writer.write(batch(run, [placement_row(2, "A-1"), placement_row(3, "A-2")]))

    outcome = await ports.writer.write(batch(run, [placement_row(4, "A-1", placed_balance=99)]))

    assert (outcome.created, outcome.updated, outcome.failed) == (0, 0, 1)
    assert outcome.failures[0].line == 2
    assert "superseded by line 4" in outcome.failures[0].reason
    accounts, _ = await accounts_of(ports, run)
    assert accounts["A-1"].placed_balance == 99
    stored = await ports.runs.get(run.agency_id, run.id)
    assert stored.rows_read == stored.rows_created + stored.rows_updated + stored.rows_failed
    assert [e.line for e in await ports.runs.errors(run.id, after_line=None, limit=10)] == [2]


async def test_a_row_cannot_move_another_runs_account_to_another_currency(ports):
    first_run = await started_run(ports)
    await ports.writer.write(
        batch(first_run, [placement_row(2, "A-1", debtor_id="D-1", first_name="Ada")])
    )
    second = await ports.runs.add_or_get(new_run(first_run.agency_id, sha256="c" * 64))
    second = await ports.runs.start(second.id, attempt=0, at=T0)
    rows = [
        placement_row(2, "A-1", debtor_id="D-1", first_name="Eve", currency="EUR"),
        placement_row(3, "A-2", currency="EUR"),
    ]

    outcome = await ports.writer.write(batch(second, rows, minutes=5))

    assert (outcome.created, outcome.updated, outcome.failed) == (1, 0, 1)
    assert outcome.failures == [currency_kept(2, "EUR", "USD")]
    assert "the account is in USD" in outcome.failures[0].reason
    accounts, debtors = await accounts_of(ports, first_run)
    kept = accounts["A-1"]
    assert (kept.currency, kept.updated_at) == ("USD", T0)
    assert debtors[kept.debtor_id].first_name == "Ada"  # the refused row wrote nothing
    assert accounts["A-2"].currency == "EUR"
    stored = await ports.runs.get(second.agency_id, second.id)
    assert (stored.rows_created, stored.rows_failed) == (1, 1)

    # The run's own account may change currency at a later line: the later line wins.
    outcome = await ports.writer.write(
        batch(second, [placement_row(4, "A-2", currency="USD")], minutes=6)
    )
    assert [(f.line, f.column) for f in outcome.failures] == [(3, "account_id")]  # superseded
    accounts, _ = await accounts_of(ports, first_run)
    assert accounts["A-2"].currency == "USD"


async def test_a_run_cannot_move_an_account_it_only_updated_to_another_currency(ports):
    first_run = await started_run(ports)
    await ports.writer.write(batch(first_run, [placement_row(2, "A-1", placed_balance=10_000)]))
    second = await ports.runs.add_or_get(new_run(first_run.agency_id, sha256="c" * 64))
    second = await ports.runs.start(second.id, attempt=0, at=T0)
    await ports.writer.write(
        batch(
            second,
            [placement_row(2, "A-1", placed_balance=10_000), placement_row(3, "A-2")],
            minutes=5,
        )
    )

    # Updating A-1 made this run its last writer, not its creator: its currency stays.
    outcome = await ports.writer.write(
        batch(
            second,
            [
                placement_row(1003, "A-1", placed_balance=5_000, currency="EUR"),
                placement_row(1004, "A-2", currency="EUR"),
            ],
            minutes=6,
        )
    )

    assert (outcome.created, outcome.updated, outcome.failed) == (0, 0, 2)
    assert outcome.failures == [currency_kept(1003, "EUR", "USD"), superseded(3, 1004)]
    accounts, _ = await accounts_of(ports, first_run)
    kept = accounts["A-1"]
    assert (kept.currency, kept.placed_balance) == ("USD", 10_000)
    assert kept.updated_at == T0 + timedelta(minutes=5)
    assert accounts["A-2"].currency == "EUR"  # the run created A-2: the later line wins
    stored = await ports.runs.get(second.agency_id, second.id)
    assert (stored.rows_read, stored.rows_created, stored.rows_updated) == (4, 1, 1)
    assert stored.rows_failed == 2


async def test_the_batch_errors_are_stored_and_counted(ports):
    run = await started_run(ports)
    bad = ImportRowError(line=3, column="charge_off_date", reason="not a date", value="2023-02-30")

    outcome = await ports.writer.write(batch(run, [placement_row(2, "A-1")], [bad]))

    assert (outcome.created, outcome.failed) == (1, 1)
    assert await ports.runs.errors(run.id, after_line=None, limit=10) == [bad]
    stored = await ports.runs.get(run.agency_id, run.id)
    assert (stored.rows_read, stored.rows_failed) == (2, 1)


async def test_a_batch_is_the_runs_progress(ports):
    run = await started_run(ports)

    await ports.writer.write(batch(run, [placement_row(2, "A-1")], minutes=7))

    stored = await ports.runs.get(run.agency_id, run.id)
    assert stored.progressed_at == T0 + timedelta(minutes=7)


async def test_a_writer_of_an_older_attempt_writes_nothing(ports):
    run = await started_run(ports)
    await ports.runs.start(run.id, attempt=run.attempt, at=T0)

    with pytest.raises(Conflict):
        await ports.writer.write(batch(run, [placement_row(2, "A-1")]))

    accounts, _ = await accounts_of(ports, run)
    assert accounts == {}


async def test_overlapping_writes_commit_in_the_order_they_were_made(ports):
    run = await started_run(ports)
    first = batch(run, [placement_row(2, "A-1", placed_balance=100)])
    second = batch(run, [placement_row(3, "A-1", placed_balance=300)], minutes=1)

    outcomes = await asyncio.gather(ports.writer.write(first), ports.writer.write(second))

    assert [(o.created, o.updated) for o in outcomes] == [(1, 0), (0, 0)]
    assert [f.line for f in outcomes[1].failures] == [2]  # superseded by line 3
    accounts, _ = await accounts_of(ports, run)
    assert accounts["A-1"].placed_balance == 300
    stored = await ports.runs.get(run.agency_id, run.id)
    assert (stored.lines_done, stored.rows_created) == (3, 1)


# In memory a write ends before the next one starts: only a database's writes overlap.
@pytest.fixture(params=STORES[1:])
def database_ports(request: pytest.FixtureRequest) -> ImportPorts:
    return import_ports(request, request.param)


async def test_a_write_begun_while_the_one_before_fails_writes_nothing(database_ports):
    ports = database_ports
    run = await started_run(ports)
    first = asyncio.create_task(ports.writer.write(batch(run, [placement_row(2, "A-1")])))
    after = asyncio.create_task(ports.writer.write(batch(run, [placement_row(3, "A-2")])))
    await asyncio.sleep(0)  # both have begun, and so taken their turns
    first.cancel()

    outcomes = await asyncio.gather(first, after, return_exceptions=True)

    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert isinstance(outcomes[1], RuntimeError)
    accounts, _ = await accounts_of(ports, run)
    assert accounts == {}
    stored = await ports.runs.get(run.agency_id, run.id)
    assert (stored.rows_read, stored.lines_done) == (0, 0)


async def test_a_new_attempt_does_not_wait_on_the_writes_of_the_one_it_took_over(ports):
    run = await started_run(ports)
    old = batch(run, [placement_row(2, "A-1")])
    taken_over = await ports.runs.start(run.id, attempt=run.attempt, at=T0)
    new = batch(taken_over, [placement_row(2, "A-1"), placement_row(3, "A-2")])

    outcomes = await asyncio.gather(
        ports.writer.write(old), ports.writer.write(new), return_exceptions=True
    )

    assert isinstance(outcomes[0], Conflict)
    assert outcomes[1].created == 2
    stored = await ports.runs.get(run.agency_id, run.id)
    assert (stored.attempt, stored.lines_done) == (taken_over.attempt, 3)
