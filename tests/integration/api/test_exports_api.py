"""Exports over the API, through the real app on SQLite and PostgreSQL: requested, written by
the in-process broker's worker task to local storage, downloaded through the signed link the
app serves; nightly exports; the purge, run twice."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from dishka import Provider, Scope, provide
from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_core.domain.export import ExportKind
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.use_cases.accounts import NewAccount, PlaceAccount
from debtflow_core.use_cases.exports import (
    RUN_EXPORT,
    PurgeExpiredExports,
    QueueNightlyExports,
    RunExport,
)
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, Tenant, TestAdapters, make_settings

BUCKETS = ("0-90", "91-180", "181-365", "1-2y", "over-2y", "unknown")


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on local storage under ``tmp_path``."""
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    settings = make_settings(
        database_url,
        storage_url=f"file://{tmp_path / 'storage'}",
        export_link_seconds=600,
    )
    app = create_app(settings, TestAdapters(clock))
    async with AsyncTestClient(app) as client:
        yield Api(app, client, clock)


async def later(tenant: Tenant, delta: timedelta) -> None:
    """Move the clock on, and sign everyone in again (access tokens last 15 minutes)."""
    tenant.api.clock.advance(delta)
    for name in tenant.headers:
        token = (await tenant.api.sign_in(f"{name}@{tenant.slug}.example"))["access_token"]
        tenant.headers[name] = {"Authorization": f"Bearer {token}"}


async def request_export(tenant: Tenant, body: dict[str, Any], role: str = "admin") -> Any:
    return await tenant.api.client.post("/v1/exports", json=body, headers=tenant.headers[role])


async def finished(tenant: Tenant, export_id: str) -> dict[str, Any]:
    """The export once the worker task has finished it."""
    for _ in range(500):
        response = await tenant.api.client.get(
            f"/v1/exports/{export_id}", headers=tenant.headers["readonly"]
        )
        assert response.status_code == 200, response.text
        if response.json()["status"] in ("succeeded", "failed"):
            return response.json()
        await asyncio.sleep(0.01)
    raise AssertionError(f"export {export_id} did not finish: {response.json()}")


async def download(api: Api, url: str) -> tuple[Any, list[list[str]]]:
    """Follow a download link through the app itself, with no token."""
    link = urlsplit(url)
    response = await api.client.get(f"{link.path}?{link.query}")
    return response, list(csv.reader(io.StringIO(response.text)))


async def seeded(tenant: Tenant) -> list[tuple[str, str, str, int]]:
    """Accounts of two creditors and currencies; their (creditor, month, currency, balance)."""
    placed = []
    for number, (creditor, currency, balance) in enumerate(
        [
            ("First Bank", "USD", 10_000),
            ("First Bank", "USD", 2_500),
            ("=cmd|' /C calc'!A0", "EUR", 7_000),
        ]
    ):
        debtor = await tenant.debtor()
        account = await tenant.api.run(
            PlaceAccount,
            tenant.admin,
            NewAccount(
                debtor_id=debtor.id,
                external_id=f"A-{number}",
                original_creditor=creditor,
                currency=currency,
                placed_balance=balance,
            ),
        )
        placed.append(
            (creditor, f"{account.placed_at:%Y-%m}", account.currency, account.placed_balance)
        )
    return placed


def expected_recovery(placed: list[tuple[str, str, str, int]]) -> list[list[str]]:
    """The recovery CSV recomputed from the placed accounts alone (nothing collected yet)."""
    groups: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])

    def add(key: tuple[str, ...], balance: int) -> None:
        groups[key][0] += 1
        groups[key][1] += balance

    for creditor, month, currency, balance in placed:
        add(("creditor_month", creditor, month, currency), balance)
        add(("creditor", creditor, "", currency), balance)
        add(("month", "", month, currency), balance)

    def defused(text: str) -> str:
        return "'" + text if text[:1] in ("=", "+", "-", "@") else text

    order = ("creditor_month", "creditor", "month")
    rows = sorted(groups.items(), key=lambda item: (order.index(item[0][0]), item[0][1:]))
    header = "section,original_creditor,month,currency,accounts,placed,collected,recovery_rate_bps"
    return [header.split(",")] + [
        [section, defused(creditor), month, currency, str(count), str(total), "0", "0"]
        for (section, creditor, month, currency), (count, total) in rows
    ]


async def test_an_export_is_requested_written_by_the_worker_and_downloaded(api, alpha):
    placed = await seeded(alpha)
    body = {"kind": "recovery", "parameters": {"from": "2026-03-01", "to": "2026-03-31"}}

    response = await request_export(alpha, body, role="readonly")

    assert response.status_code == 202, response.text
    queued = response.json()
    assert response.headers["location"] == f"/v1/exports/{queued['id']}"
    assert (queued["status"], queued["kind"], queued["parameters"]) == (
        "queued",
        "recovery",
        body["parameters"],
    )
    assert queued["requested_by"] == str(alpha.id_of("readonly"))
    assert queued["file_name"] == "recovery-2026-03-01-2026-03-31.csv"
    assert "download_url" not in queued
    done = await finished(alpha, queued["id"])
    assert done["status"] == "succeeded", done
    expected = expected_recovery(placed)
    assert done["rows"] == len(expected) - 1 == 6
    assert done["download_expires_at"] is not None
    file, rows = await download(api, done["download_url"])
    assert file.status_code == 200, file.text
    assert file.headers["content-type"].startswith("text/csv")
    assert "recovery-2026-03-01-2026-03-31.csv" in file.headers["content-disposition"]
    assert rows == expected
    audit = await api.client.get(
        "/v1/audit-log", params={"entity_id": queued["id"]}, headers=alpha.headers["admin"]
    )
    assert sorted((e["action"], e["actor_id"]) for e in audit.json()["items"]) == [
        ("export.finished", None),
        ("export.requested", str(alpha.id_of("readonly"))),
    ]


async def test_an_aging_export_counts_every_bucket(api, alpha):
    await seeded(alpha)
    response = await request_export(alpha, {"kind": "aging"})
    done = await finished(alpha, response.json()["id"])

    _, rows = await download(api, done["download_url"])

    day = f"{START:%Y-%m-%d}"
    assert done["parameters"] == {"as_of": day}
    assert rows[0] == ["as_of", "currency", "bucket", "accounts", "balance"]
    assert rows[1:] == [
        [day, currency, bucket, *(figures if bucket == "unknown" else ["0", "0"])]
        for currency, figures in (("EUR", ["1", "7000"]), ("USD", ["2", "12500"]))
        for bucket in BUCKETS
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"kind": "collections", "parameters": {"from": "2026-03-01"}}, 422, "parameters.to"),
        ({"kind": "aging", "parameters": {"from": "2026-03-01"}}, 422, "parameters.from"),
        ({"kind": "payroll"}, 400, None),
        ({"kind": "aging", "parameters": {"since": "2026-03-01"}}, 400, None),
        ({"kind": "imports", "parameters": {"from": "March", "to": "2026-03-31"}}, 400, None),
    ],
)
async def test_bad_requests_are_problems(api, alpha, body, status, field):
    response = await request_export(alpha, body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [field]
    listed = await api.client.get("/v1/exports", headers=alpha.headers["admin"])
    assert listed.json()["items"] == []


async def test_collectors_are_refused_and_tokens_required(api, alpha):
    export = (await request_export(alpha, {"kind": "aging"})).json()
    for method, path in [
        ("POST", "/v1/exports"),
        ("GET", "/v1/exports"),
        ("GET", f"/v1/exports/{export['id']}"),
    ]:
        body = {"json": {"kind": "aging"}} if method == "POST" else {}
        refused = await api.client.request(method, path, headers=alpha.headers["collector"], **body)
        anonymous = await api.client.request(method, path, **body)
        assert refused.status_code == 403, (path, refused.text)
        assert anonymous.status_code == 401, (path, anonymous.text)


async def test_another_agencys_export_is_not_found(api, alpha):
    beta = await api.tenant("beta")
    export = (await request_export(alpha, {"kind": "aging"})).json()
    await finished(alpha, export["id"])

    response = await api.client.get(f"/v1/exports/{export['id']}", headers=beta.headers["admin"])
    listed = await api.client.get("/v1/exports", headers=beta.headers["admin"])

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_exports_are_listed_newest_first_a_page_at_a_time_and_filtered(api, alpha):
    ids = []
    for body in [
        {"kind": "aging"},
        {"kind": "imports", "parameters": {"from": "2026-03-01", "to": "2026-03-01"}},
        {"kind": "aging"},
    ]:
        export = (await request_export(alpha, body)).json()
        await finished(alpha, export["id"])
        ids.append(export["id"])
    headers = alpha.headers["readonly"]

    first = (await api.client.get("/v1/exports", params={"limit": 2}, headers=headers)).json()
    rest = (
        await api.client.get(
            "/v1/exports", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
        )
    ).json()
    aging = await api.client.get("/v1/exports", params={"kind": "aging"}, headers=headers)
    queued = await api.client.get("/v1/exports", params={"status": "queued"}, headers=headers)
    bad = await api.client.get("/v1/exports", params={"status": "done"}, headers=headers)

    assert [e["id"] for e in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None
    assert [e["id"] for e in aging.json()["items"]] == [ids[2], ids[0]]
    assert queued.json()["items"] == []
    assert bad.status_code == 400


class HeldJobs(Provider):
    """Jobs kept in a list rather than run: the nightly task is run from the test's own
    loop, where a job sent to the app's in-process broker would outlive the app."""

    def __init__(self, jobs: InMemoryJobQueue) -> None:
        super().__init__()
        self._jobs = jobs

    @provide(scope=Scope.APP, override=True)
    def job_queue(self) -> JobQueue:
        return self._jobs


async def test_nightly_exports_are_listed_like_the_others(database_url, tmp_path):
    jobs = InMemoryJobQueue()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    settings = make_settings(
        database_url,
        storage_url=f"file://{tmp_path / 'storage'}",
        nightly_exports=(ExportKind.COLLECTIONS,),
    )
    app = create_app(settings, TestAdapters(clock), HeldJobs(jobs))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        await seeded(alpha)
        default = await client.get("/v1/exports/nightly", headers=alpha.headers["readonly"])
        chosen = await client.put(
            "/v1/exports/nightly", json={"kinds": ["aging"]}, headers=alpha.headers["admin"]
        )
        refused = await client.put(
            "/v1/exports/nightly", json={"kinds": []}, headers=alpha.headers["readonly"]
        )
        unknown = await client.put(
            "/v1/exports/nightly", json={"kinds": ["payroll"]}, headers=alpha.headers["admin"]
        )
        assert default.json() == {"kinds": ["collections"], "inherited": True}
        assert chosen.status_code == 200, chosen.text
        assert chosen.json() == {"kinds": ["aging"], "inherited": False}
        assert (refused.status_code, unknown.status_code) == (403, 400)
        await later(alpha, timedelta(days=1))

        queued = await api.run(QueueNightlyExports)
        again = await api.run(QueueNightlyExports)
        for task, arguments in jobs.jobs:
            assert task == RUN_EXPORT
            await api.run(RunExport, UUID(arguments["agency_id"]), UUID(arguments["export_id"]))

        assert (queued, again) == (1, 0)
        listed = (await api.client.get("/v1/exports", headers=alpha.headers["readonly"])).json()
        [nightly] = listed["items"]
        assert (nightly["kind"], nightly["requested_by"]) == ("aging", None)
        assert nightly["parameters"] == {"as_of": f"{START:%Y-%m-%d}"}
        done = await finished(alpha, nightly["id"])
        assert done["status"] == "succeeded"
        _, rows = await download(api, done["download_url"])
        assert [row[2:] for row in rows[1:] if row[2] == "unknown"] == [
            ["unknown", "1", "7000"],
            ["unknown", "2", "12500"],
        ]


async def test_the_purge_removes_exports_past_retention_once(api, alpha, tmp_path):
    old = (await request_export(alpha, {"kind": "aging"})).json()
    old = await finished(alpha, old["id"])
    await later(alpha, timedelta(days=29))
    recent = (await request_export(alpha, {"kind": "aging"})).json()
    await finished(alpha, recent["id"])
    await later(alpha, timedelta(days=2))

    first = await api.run(PurgeExpiredExports)
    listed_after_first = await api.client.get("/v1/exports", headers=alpha.headers["admin"])
    second = await api.run(PurgeExpiredExports)
    listed_after_second = await api.client.get("/v1/exports", headers=alpha.headers["admin"])

    assert (first, second) == (1, 0)
    assert listed_after_first.json() == listed_after_second.json()
    assert [e["id"] for e in listed_after_second.json()["items"]] == [recent["id"]]
    gone = await api.client.get(f"/v1/exports/{old['id']}", headers=alpha.headers["admin"])
    assert gone.status_code == 404
    assert not (tmp_path / "storage" / old["storage_key"]).exists()
    assert (tmp_path / "storage" / recent["storage_key"]).exists()
