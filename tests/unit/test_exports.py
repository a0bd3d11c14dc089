"""The export use cases over the in-memory adapters: who may ask, which parameters pass,
the CSV file each kind writes, links, nightly exports and the purge."""

from __future__ import annotations

import csv
import io
import tempfile
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlsplit

import pytest

from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_adapters.memory import InMemoryStore, InMemoryUnitOfWork
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_adapters.memory.object_storage import InMemoryObjectStorage
from debtflow_adapters.memory.reports import InMemoryReportReader
from debtflow_core.actor import Actor
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.export import (
    Export,
    ExportKind,
    ExportParameters,
    ExportStatus,
    NightlyExports,
)
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.errors import NotFound, PermissionDenied, ValidationFailed
from debtflow_core.export_csv import safe_cell
from debtflow_core.ports.audit_log import AuditLogRepository, AuditQuery
from debtflow_core.use_cases.exports import (
    RUN_EXPORT,
    AbandonExport,
    ChooseNightlyExports,
    ExportPolicy,
    FailStalledExports,
    GetExport,
    GetNightlyExports,
    ListExports,
    NewExport,
    NightlyChoice,
    PurgeExpiredExports,
    QueueNightlyExports,
    RequestExport,
    RunExport,
    file_name,
    storage_key,
)
from debtflow_core.use_cases.reports import (
    AgeBalances,
    MeasureCollectorPerformance,
    MeasureRecovery,
    SummarizeCollections,
    SummarizeImports,
)
from tests.support.reports import Seeder, Tenant

MARCH = ExportParameters(from_=date(2026, 3, 1), to=date(2026, 3, 31))


class AuditLogDown(Exception):
    """The audit log refused an entry."""


class RefusingAuditLog(AuditLogRepository):
    async def add(self, entry: AuditEntry) -> None:
        raise AuditLogDown(entry.action)

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        return []


class AuditLogDownUnitOfWork(InMemoryUnitOfWork):
    """An in-memory unit of work whose audit log fails every write."""

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.audit_log = RefusingAuditLog()
        return self


class Desk:
    """The export use cases over one in-memory store, seeded through :class:`Seeder`."""

    def __init__(self, policy: ExportPolicy | None = None) -> None:
        self.store = InMemoryStore()
        self.seeder = Seeder(lambda: InMemoryUnitOfWork(self.store))
        self.clock = self.seeder.clock
        self.reader = InMemoryReportReader(self.store)
        self.jobs = InMemoryJobQueue()
        links = SignedLinks(b"k" * 32, base_url="http://api.test", clock=self.clock)
        self.storage = InMemoryObjectStorage(links)
        self.policy = policy or ExportPolicy()

    def uow(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)

    def request(self, uow: InMemoryUnitOfWork | None = None) -> RequestExport:
        return RequestExport(self.jobs, uow or self.uow(), self.clock)

    def run(self, uow: InMemoryUnitOfWork | None = None) -> RunExport:
        return RunExport(
            self.storage,
            uow or self.uow(),
            self.clock,
            SummarizeCollections(self.reader),
            AgeBalances(self.reader, self.clock),
            MeasureRecovery(self.reader),
            MeasureCollectorPerformance(self.reader),
            SummarizeImports(self.reader),
        )

    def get(self) -> GetExport:
        return GetExport(self.uow(), self.storage, self.policy, self.clock)

    async def file(self, key: str) -> list[list[str]]:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "export.csv"
            await self.storage.get_file(key, path)
            raw = path.read_bytes()
        assert b"\r\n" in raw
        return list(csv.reader(io.StringIO(raw.decode())))

    async def stored(self, agency_id: uuid.UUID, export_id: uuid.UUID) -> Export | None:
        async with self.uow() as uow:
            return await uow.exports.get(agency_id, export_id)

    async def leave_running(self, export_id: uuid.UUID) -> None:
        """Start the export as a worker that dies before finishing it would."""
        async with self.uow() as uow:
            await uow.exports.start(export_id, at=self.clock.now())
            await uow.commit()

    async def audit(self, agency_id: uuid.UUID) -> list[str]:
        async with self.uow() as uow:
            entries = await uow.audit_log.query(AuditQuery(agency_id=agency_id, limit=200))
        return sorted(e.action for e in entries if e.entity_type == "export")

    async def requested_and_run(self, actor: Actor, kind: ExportKind, parameters: ExportParameters):
        export = await self.request().execute(actor, NewExport(kind=kind, parameters=parameters))
        return await self.run().execute(export.agency_id, export.id)


@pytest.fixture
async def desk() -> Desk:
    desk = Desk()
    desk.seeder.at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    return desk


@pytest.fixture
async def alpha(desk: Desk) -> Tenant:
    return await desk.seeder.tenant("alpha", ("c1",))


async def test_admins_and_readonly_users_request_exports_collectors_may_not(desk, alpha):
    for name in ("admin", "readonly"):
        export = await desk.request().execute(
            alpha.actors[name], NewExport(kind=ExportKind.COLLECTIONS, parameters=MARCH)
        )
        assert export.status is ExportStatus.QUEUED
        assert export.requested_by == alpha.actors[name].user_id
        assert export.file_name == "collections-2026-03-01-2026-03-31.csv"
        assert export.storage_key == f"{export.agency_id}/exports/2026/03/02/{export.id}.csv"
        assert desk.jobs.jobs[-1] == (
            RUN_EXPORT,
            {"export_id": str(export.id), "agency_id": str(export.agency_id)},
        )
    with pytest.raises(PermissionDenied):
        await desk.request().execute(
            alpha.actors["c1"], NewExport(kind=ExportKind.COLLECTIONS, parameters=MARCH)
        )
    assert len(desk.jobs.jobs) == 2
    assert await desk.audit(alpha.admin.agency_id) == ["export.requested"] * 2


@pytest.mark.parametrize(
    ("kind", "parameters", "field"),
    [
        (ExportKind.COLLECTIONS, ExportParameters(to=date(2026, 3, 1)), "parameters.from"),
        (ExportKind.RECOVERY, ExportParameters(from_=date(2026, 3, 1)), "parameters.to"),
        (
            ExportKind.IMPORTS,
            ExportParameters(from_=date(2026, 3, 2), to=date(2026, 3, 1)),
            "parameters.to",
        ),
        (
            ExportKind.COLLECTOR_PERFORMANCE,
            ExportParameters(from_=date(2025, 1, 1), to=date(2026, 3, 1)),
            "parameters.to",
        ),
        (
            ExportKind.COLLECTIONS,
            ExportParameters(from_=date(2026, 3, 1), to=date(2026, 3, 1), as_of=date(2026, 3, 1)),
            "parameters.as_of",
        ),
        (ExportKind.AGING, MARCH, "parameters.from"),
        (ExportKind.AGING, ExportParameters(as_of=date(1066, 10, 14)), "parameters.as_of"),
    ],
)
async def test_parameters_a_kind_does_not_take_are_refused_naming_them(
    desk, alpha, kind, parameters, field
):
    with pytest.raises(ValidationFailed) as refused:
        await desk.request().execute(alpha.admin, NewExport(kind=kind, parameters=parameters))
    assert refused.value.field == field
    assert desk.jobs.jobs == []


async def test_an_aging_export_is_as_of_today_unless_told(desk, alpha):
    export = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    assert export.parameters == ExportParameters(as_of=date(2026, 3, 2))
    assert export.file_name == "aging-2026-03-02.csv"


async def _collections_seed(desk: Desk, alpha: Tenant) -> None:
    seeder = desk.seeder
    await seeder.account(alpha, "A-1", balance=100_000, collector="c1")
    await seeder.account(alpha, "A-2", balance=80_000, currency="EUR")
    seeder.at(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))
    taken = await seeder.pay(alpha, "A-1", 30_000)
    await seeder.pay(alpha, "A-2", 1_500, processor=1)
    seeder.at(datetime(2026, 3, 5, 10, 0, tzinfo=UTC))
    await seeder.refund(alpha, taken, 4_000)
    await seeder.pay(alpha, "A-1", 9_999, method="pm_card_chargeDeclined")


async def test_a_collections_export_has_a_row_per_report_line(desk, alpha):
    await _collections_seed(desk, alpha)
    one, two = (str(p) for p in alpha.processors)
    c1 = str(alpha.actors["c1"].user_id)

    export = await desk.requested_and_run(alpha.actors["readonly"], ExportKind.COLLECTIONS, MARCH)
    rows = await desk.file(export.storage_key)

    header = ["section", "group", "currency", "payments", "collected", "refunds", "refunded", "net"]
    expected = [
        header,
        ["total", "", "EUR", "1", "1500", "0", "0", "1500"],
        ["total", "", "USD", "1", "30000", "1", "4000", "26000"],
        # The report orders groups by their text, unassigned ("None") among the ids.
        *sorted(
            [
                ["collector", "", "EUR", "1", "1500", "0", "0", "1500"],
                ["collector", c1, "USD", "1", "30000", "1", "4000", "26000"],
            ],
            key=lambda row: row[1] or "None",
        ),
        *sorted(
            [
                ["processor", one, "USD", "1", "30000", "1", "4000", "26000"],
                ["processor", two, "EUR", "1", "1500", "0", "0", "1500"],
            ],
            key=lambda row: row[1],
        ),
        ["day", "2026-03-03", "EUR", "1", "1500", "0", "0", "1500"],
        ["day", "2026-03-03", "USD", "1", "30000", "0", "0", "30000"],
        ["day", "2026-03-05", "USD", "0", "0", "1", "4000", "-4000"],
    ]
    assert rows == expected
    assert (export.status, export.rows) == (ExportStatus.SUCCEEDED, len(expected) - 1)
    assert export.finished_at is not None and export.started_at is not None


async def test_running_an_export_twice_changes_nothing_the_second_time(desk, alpha):
    await _collections_seed(desk, alpha)
    export = await desk.requested_and_run(alpha.admin, ExportKind.COLLECTIONS, MARCH)
    written = await desk.file(export.storage_key)
    await desk.seeder.pay(alpha, "A-1", 1_000)  # would change the figures if recomputed

    again = await desk.run().execute(export.agency_id, export.id)

    assert again == export
    assert await desk.file(export.storage_key) == written
    assert await desk.audit(alpha.admin.agency_id) == ["export.finished", "export.requested"]


async def test_an_export_left_running_by_a_dead_worker_is_written_by_the_next(desk, alpha):
    export = await desk.request().execute(
        alpha.admin, NewExport(kind=ExportKind.AGING, parameters=ExportParameters())
    )
    await desk.leave_running(export.id)

    done = await desk.run().execute(export.agency_id, export.id)

    assert done.status is ExportStatus.SUCCEEDED
    assert await desk.storage.exists(export.storage_key)


async def test_an_export_is_not_finished_unless_its_audit_entry_is_written(desk, alpha):
    export = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))

    with pytest.raises(AuditLogDown):
        await desk.run(AuditLogDownUnitOfWork(desk.store)).execute(export.agency_id, export.id)

    left = await desk.stored(export.agency_id, export.id)
    assert (left.status, left.finished_at, left.rows) == (ExportStatus.RUNNING, None, None)
    assert await desk.audit(alpha.admin.agency_id) == ["export.requested"]
    # The job's retry, with the audit log back, finishes it and audits it.
    done = await desk.run().execute(export.agency_id, export.id)
    assert done.status is ExportStatus.SUCCEEDED
    assert await desk.stored(export.agency_id, export.id) == done
    assert await desk.audit(alpha.admin.agency_id) == ["export.finished", "export.requested"]


async def test_an_export_whose_request_cannot_be_audited_is_neither_kept_nor_queued(desk, alpha):
    with pytest.raises(AuditLogDown):
        await desk.request(AuditLogDownUnitOfWork(desk.store)).execute(
            alpha.admin, NewExport(kind=ExportKind.AGING)
        )

    assert (await ListExports(desk.uow()).execute(alpha.admin)).items == []
    assert desk.jobs.jobs == []


async def test_an_aging_export_lists_every_bucket_of_every_currency(desk, alpha):
    await desk.seeder.account(alpha, "A-1", balance=100_000, charge_off=date(2026, 1, 1))
    await desk.seeder.account(alpha, "A-2", balance=7_000, currency="EUR")

    export = await desk.requested_and_run(
        alpha.admin, ExportKind.AGING, ExportParameters(as_of=date(2026, 3, 2))
    )
    rows = await desk.file(export.storage_key)

    assert rows[0] == ["as_of", "currency", "bucket", "accounts", "balance"]
    assert rows[1:] == [
        ["2026-03-02", currency, bucket, *figures]
        for currency, filled in (("EUR", "unknown"), ("USD", "0-90"))
        for bucket in ("0-90", "91-180", "181-365", "1-2y", "over-2y", "unknown")
        for figures in [
            (["1", "7000"] if currency == "EUR" else ["1", "100000"])
            if bucket == filled
            else ["0", "0"]
        ]
    ]


async def test_text_a_spreadsheet_would_run_is_defused(desk, alpha):
    await desk.seeder.account(alpha, "A-1", balance=5_000, creditor='=HYPERLINK("http://x")')
    await desk.seeder.account(alpha, "A-2", balance=6_000, creditor="@SUM(A1)")

    export = await desk.requested_and_run(alpha.admin, ExportKind.RECOVERY, MARCH)
    rows = await desk.file(export.storage_key)

    creditors = {row[1] for row in rows[1:] if row[0] == "creditor"}
    assert creditors == {'\'=HYPERLINK("http://x")', "'@SUM(A1)"}
    assert sorted(row[:6] for row in rows[1:] if row[0] == "creditor_month") == [
        ["creditor_month", '\'=HYPERLINK("http://x")', "2026-03", "USD", "1", "5000"],
        ["creditor_month", "'@SUM(A1)", "2026-03", "USD", "1", "6000"],
    ]
    assert [safe_cell(v) for v in ("-1", "+1", "\tx", "a-b", -5, None)] == [
        "'-1",
        "'+1",
        "'\tx",
        "a-b",
        -5,
        "",
    ]


async def test_performance_and_imports_exports(desk, alpha):
    await desk.seeder.account(alpha, "A-1", balance=10_000, collector="c1")
    await desk.seeder.activity(alpha, "c1", "A-1", ActivityType.CALL)
    await desk.seeder.activity(alpha, "c1", "A-1", ActivityType.PROMISE_TO_PAY, promise=2_500)
    await desk.seeder.import_run(alpha, None, ImportStatus.SUCCEEDED, created=8, failed=2)
    c1 = str(alpha.actors["c1"].user_id)

    performance = await desk.requested_and_run(alpha.admin, ExportKind.COLLECTOR_PERFORMANCE, MARCH)
    imports = await desk.requested_and_run(alpha.admin, ExportKind.IMPORTS, MARCH)

    perf_rows = await desk.file(performance.storage_key)
    assert perf_rows[0] == ["collector_id", "measure", "currency", "count", "amount"]
    assert [c1, "accounts_assigned", "", "1", ""] in perf_rows
    assert [c1, "activity_call", "", "1", ""] in perf_rows
    assert [c1, "activity_email", "", "0", ""] in perf_rows
    assert [c1, "promises_to_pay", "USD", "1", "2500"] in perf_rows
    import_rows = await desk.file(imports.storage_key)
    assert import_rows == [
        [
            "section",
            "file_source_id",
            "runs",
            "runs_queued",
            "runs_running",
            "runs_succeeded",
            "runs_partially_failed",
            "runs_failed",
            "rows_read",
            "rows_created",
            "rows_updated",
            "rows_failed",
            "error_rate_bps",
        ],
        ["total", "", "1", "0", "0", "1", "0", "0", "10", "8", "0", "2", "2000"],
        ["source", "", "1", "0", "0", "1", "0", "0", "10", "8", "0", "2", "2000"],
    ]


async def test_parameters_the_report_refuses_fail_the_export_with_the_reason(desk, alpha):
    now = desk.clock.now()
    bad = ExportParameters(from_=date(2026, 3, 31), to=date(2026, 3, 1))
    export_id = uuid.uuid4()
    async with desk.uow() as uow:
        await uow.exports.add(
            Export(
                id=export_id,
                agency_id=alpha.admin.agency_id,
                kind=ExportKind.COLLECTIONS,
                parameters=bad,
                status=ExportStatus.QUEUED,
                file_name=file_name(ExportKind.COLLECTIONS, bad),
                storage_key=storage_key(alpha.admin.agency_id, now, export_id),
                requested_by=None,
                created_at=now,
            )
        )
        await uow.commit()

    failed = await desk.run().execute(alpha.admin.agency_id, export_id)

    assert failed.status is ExportStatus.FAILED
    assert failed.failure_reason == "parameters.to: must not be before from"
    assert not await desk.storage.exists(failed.storage_key)


async def test_a_succeeded_export_offers_a_link_that_expires(desk, alpha):
    desk.policy = ExportPolicy(link_lifetime=timedelta(minutes=5))
    queued = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    before = await desk.get().execute(alpha.actors["readonly"], queued.id)
    await desk.run().execute(queued.agency_id, queued.id)

    after = await desk.get().execute(alpha.actors["readonly"], queued.id)

    assert (before.download_url, before.download_expires_at) == (None, None)
    assert after.status is ExportStatus.SUCCEEDED
    assert after.download_url is not None and after.download_expires_at is not None
    link = urlsplit(after.download_url)
    assert link.path == f"/v1/files/{queued.storage_key}"
    assert parse_qs(link.query)["name"] == [queued.file_name]
    assert int(parse_qs(link.query)["expires"][0]) == int(after.download_expires_at.timestamp())
    assert after.download_expires_at - desk.clock.now() <= timedelta(minutes=5)


async def test_another_agencys_export_is_not_found_and_collectors_are_refused(desk, alpha):
    beta = await desk.seeder.tenant("beta", ())
    export = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))

    with pytest.raises(NotFound):
        await desk.get().execute(beta.admin, export.id)
    with pytest.raises(NotFound):
        await desk.run().execute(beta.admin.agency_id, export.id)
    with pytest.raises(PermissionDenied):
        await desk.get().execute(alpha.actors["c1"], export.id)
    with pytest.raises(PermissionDenied):
        await ListExports(desk.uow()).execute(alpha.actors["c1"])
    assert (await ListExports(desk.uow()).execute(beta.admin)).items == []


async def test_exports_are_listed_newest_first_a_page_at_a_time_and_filtered(desk, alpha):
    requested = []
    for minute, (kind, parameters) in enumerate(
        [
            (ExportKind.AGING, ExportParameters()),
            (ExportKind.COLLECTIONS, MARCH),
            (ExportKind.AGING, ExportParameters()),
        ]
    ):
        desk.seeder.at(datetime(2026, 3, 2, 10, minute, tzinfo=UTC))
        requested.append(
            await desk.request().execute(alpha.admin, NewExport(kind=kind, parameters=parameters))
        )
    await desk.run().execute(alpha.admin.agency_id, requested[0].id)
    use = ListExports(desk.uow())

    first = await use.execute(alpha.actors["readonly"], limit=2)
    rest = await use.execute(alpha.actors["readonly"], limit=2, cursor=first.next_cursor)
    aging = await use.execute(alpha.actors["readonly"], kind=ExportKind.AGING)
    succeeded = await use.execute(alpha.actors["readonly"], status=ExportStatus.SUCCEEDED)

    newest_first = [e.id for e in reversed(requested)]
    assert [e.id for e in first.items + rest.items] == newest_first
    assert rest.next_cursor is None
    assert [e.id for e in aging.items] == [requested[2].id, requested[0].id]
    assert [e.id for e in succeeded.items] == [requested[0].id]


def _nightly(desk: Desk) -> QueueNightlyExports:
    return QueueNightlyExports(desk.jobs, desk.uow(), desk.clock, desk.policy)


async def test_nightly_exports_queue_each_agencys_kinds_of_yesterday_once(desk, alpha):
    beta = await desk.seeder.tenant("beta", ())
    desk.policy = ExportPolicy(nightly_kinds=(ExportKind.COLLECTIONS, ExportKind.AGING))
    desk.seeder.at(datetime(2026, 3, 3, 0, 30, tzinfo=UTC))

    first = await _nightly(desk).execute()
    second = await _nightly(desk).execute()

    assert (first, second) == (4, 0)
    assert len(desk.jobs.jobs) == 4
    for tenant in (alpha, beta):
        listed = (await ListExports(desk.uow()).execute(tenant.admin)).items
        assert sorted((e.kind, e.parameters) for e in listed) == [
            (ExportKind.AGING, ExportParameters(as_of=date(2026, 3, 2))),
            (ExportKind.COLLECTIONS, ExportParameters(from_=date(2026, 3, 2), to=date(2026, 3, 2))),
        ]
        assert {e.requested_by for e in listed} == {None}
    export = (await ListExports(desk.uow()).execute(alpha.admin)).items[0]
    done = await desk.run().execute(export.agency_id, export.id)
    assert done.status is ExportStatus.SUCCEEDED


async def test_without_nightly_kinds_nothing_is_queued(desk, alpha):
    assert await _nightly(desk).execute() == 0
    assert desk.jobs.jobs == []


async def test_an_agencys_choice_of_nightly_kinds_replaces_the_default(desk, alpha):
    beta = await desk.seeder.tenant("beta", ())
    desk.policy = ExportPolicy(nightly_kinds=(ExportKind.AGING,))
    get = GetNightlyExports(desk.uow(), desk.policy)
    choose = ChooseNightlyExports(desk.uow(), desk.clock, desk.policy)

    default = await get.execute(alpha.actors["readonly"])
    chosen = await choose.execute(
        alpha.admin,
        NightlyChoice(kinds=[ExportKind.IMPORTS, ExportKind.RECOVERY, ExportKind.IMPORTS]),
    )
    nothing = await choose.execute(beta.admin, NightlyChoice(kinds=[]))
    desk.seeder.at(datetime(2026, 3, 3, 0, 30, tzinfo=UTC))
    queued = await _nightly(desk).execute()

    assert default == NightlyExports(kinds=(ExportKind.AGING,), inherited=True)
    assert chosen == NightlyExports(kinds=(ExportKind.IMPORTS, ExportKind.RECOVERY))
    assert await get.execute(alpha.actors["readonly"]) == chosen
    assert await get.execute(beta.admin) == nothing == NightlyExports(kinds=())
    assert queued == 2
    listed = (await ListExports(desk.uow()).execute(alpha.admin)).items
    assert sorted(e.kind for e in listed) == [ExportKind.IMPORTS, ExportKind.RECOVERY]
    assert (await ListExports(desk.uow()).execute(beta.admin)).items == []
    async with desk.uow() as uow:
        [entry] = await uow.audit_log.query(
            AuditQuery(agency_id=alpha.admin.agency_id, entity_type="nightly_exports")
        )
    assert (entry.before["inherited"], list(entry.before["kinds"])) == (True, ["aging"])
    assert (entry.after["inherited"], list(entry.after["kinds"])) == (
        False,
        ["imports", "recovery"],
    )


async def test_only_agency_admins_choose_the_nightly_kinds(desk, alpha):
    choose = ChooseNightlyExports(desk.uow(), desk.clock, desk.policy)
    get = GetNightlyExports(desk.uow(), desk.policy)
    for name in ("readonly", "c1"):
        with pytest.raises(PermissionDenied):
            await choose.execute(alpha.actors[name], NightlyChoice(kinds=[ExportKind.AGING]))
    with pytest.raises(PermissionDenied):
        await get.execute(alpha.actors["c1"])
    async with desk.uow() as uow:
        assert await uow.exports.nightly_kinds() == {}


async def test_the_purge_deletes_old_exports_and_their_files_and_is_idempotent(desk, alpha):
    desk.policy = ExportPolicy(retention=timedelta(days=30))
    old = await desk.requested_and_run(alpha.admin, ExportKind.AGING, ExportParameters())
    never_ran = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    desk.seeder.at(datetime(2026, 3, 25, 9, 0, tzinfo=UTC))
    recent = await desk.requested_and_run(alpha.admin, ExportKind.AGING, ExportParameters())
    desk.seeder.at(datetime(2026, 4, 2, 9, 0, tzinfo=UTC))
    purge = PurgeExpiredExports(desk.uow(), desk.storage, desk.clock, desk.policy)

    first = await purge.execute()
    listed_after_first = await ListExports(desk.uow()).execute(alpha.admin)
    second = await purge.execute()

    assert (first, second) == (2, 0)
    assert [e.id for e in listed_after_first.items] == [recent.id]
    assert [e.id for e in (await ListExports(desk.uow()).execute(alpha.admin)).items] == [recent.id]
    assert not await desk.storage.exists(old.storage_key)
    assert await desk.stored(alpha.admin.agency_id, never_ran.id) is None
    assert await desk.storage.exists(recent.storage_key)
    assert (await desk.audit(alpha.admin.agency_id)).count("export.purged") == 2


async def test_exports_whose_job_was_lost_are_failed_a_day_later_once(desk, alpha):
    lost = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    left_running = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    await desk.leave_running(left_running.id)
    done = await desk.requested_and_run(alpha.admin, ExportKind.AGING, ExportParameters())
    desk.seeder.at(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))  # 23 hours later
    recent = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    sweep = FailStalledExports(desk.uow(), desk.clock)
    too_soon = await sweep.execute()
    desk.seeder.at(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))  # 25 hours after the first

    first, second = await sweep.execute(), await sweep.execute()

    assert (too_soon, first, second) == (0, 2, 0)
    for stalled in (lost, left_running):
        failed = await desk.stored(alpha.admin.agency_id, stalled.id)
        assert failed.status is ExportStatus.FAILED
        assert failed.failure_reason.startswith("did not finish within 24 hours")
    for untouched in (done, recent):
        export = await desk.stored(alpha.admin.agency_id, untouched.id)
        assert export.status is untouched.status
    async with desk.uow() as uow:
        entries = await uow.audit_log.query(
            AuditQuery(agency_id=alpha.admin.agency_id, entity_id=lost.id)
        )
    assert [e.action for e in entries] == ["export.finished", "export.requested"]
    assert entries[0].actor_id is None  # the platform's doing


async def test_an_export_whose_job_gave_up_is_failed_at_once_and_only_once(desk, alpha):
    gave_up = await desk.request().execute(alpha.admin, NewExport(kind=ExportKind.AGING))
    await desk.leave_running(gave_up.id)
    done = await desk.requested_and_run(alpha.admin, ExportKind.AGING, ExportParameters())
    abandon = AbandonExport(desk.uow(), desk.clock)

    failed = await abandon.execute(alpha.admin.agency_id, gave_up.id, attempts=5)
    again = await abandon.execute(alpha.admin.agency_id, gave_up.id, attempts=5)
    untouched = await abandon.execute(alpha.admin.agency_id, done.id, attempts=5)

    assert failed.status is ExportStatus.FAILED and again == failed
    assert failed.failure_reason.startswith("its job failed 5 times")
    assert await desk.stored(alpha.admin.agency_id, gave_up.id) == failed
    assert untouched == done
    async with desk.uow() as uow:
        entries = await uow.audit_log.query(
            AuditQuery(agency_id=alpha.admin.agency_id, entity_id=gave_up.id)
        )
    assert [e.action for e in entries].count("export.finished") == 1
    with pytest.raises(NotFound):
        await abandon.execute(alpha.admin.agency_id, uuid.uuid4(), attempts=5)
