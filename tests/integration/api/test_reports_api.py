"""The reports over HTTP: the real app on SQLite and PostgreSQL.

The figures themselves are checked against the raw rows in tests/integration/test_reports.py;
here: each route answers, refuses bad parameters naming them, refuses collectors, and
never shows another agency's data.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from debtflow_core.domain.activity import ActivityType, PromiseToPay
from debtflow_core.domain.imports import ImportRun, ImportStatus
from debtflow_core.domain.money import MAX_AMOUNT
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.activities import NewActivity, RecordActivity
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.payments import MakePayment, NewPayment
from tests.integration.api.conftest import Api, Tenant

MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
ROUTES = {
    "/v1/reports/collections": MARCH,
    "/v1/reports/aging": {"as_of": "2026-03-02"},
    "/v1/reports/recovery": MARCH,
    "/v1/reports/collector-performance": MARCH,
    "/v1/reports/imports": MARCH,
}


async def _book(api: Api, tenant: Tenant, amount: int) -> None:
    """One account (no charge-off date) with a collector, a payment of ``amount``, a
    promise of as much, and an import run that read as many rows, one failed."""
    processor = await api.run(
        AddPaymentProcessor, tenant.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
    )
    account = await tenant.account(f"{tenant.slug}-1", collector="collector", balance=100_000)
    command = NewPayment(
        account_id=account.id,
        amount=amount,
        currency="USD",
        processor_id=processor.id,
        payment_method="pm_card_visa",
    )
    await api.run(MakePayment, tenant.admin, f"{tenant.slug}-key", command)
    promise = NewActivity(
        type=ActivityType.PROMISE_TO_PAY,
        promise=PromiseToPay(amount=amount, due_on=date(2026, 4, 1)),
    )
    await api.run(RecordActivity, tenant.actors["collector"], account.id, promise)
    now = api.clock.now()
    run = ImportRun(
        id=uuid.uuid4(),
        agency_id=tenant.admin.agency_id,
        file_source_id=None,
        file_name="placements.csv",
        sha256="0" * 64,
        storage_key=None,
        status=ImportStatus.PARTIALLY_FAILED,
        rows_read=amount,
        rows_created=amount - 1,
        rows_updated=0,
        rows_failed=1,
        created_at=now,
        started_at=now,
        finished_at=now,
    )
    async with api.app.state.dishka_container() as request:
        uow = await request.get(UnitOfWork)
        async with uow:
            await uow.import_runs.add_or_get(run)
            await uow.commit()


@pytest.fixture
async def books(api: Api) -> tuple[Tenant, Tenant]:
    alpha, beta = await api.tenant("alpha"), await api.tenant("beta")
    await _book(api, alpha, 2_500)
    await _book(api, beta, 7_000)
    return alpha, beta


@pytest.mark.parametrize("role", ["admin", "readonly"])
async def test_admins_and_readonly_users_read_their_agencys_figures(api, books, role):
    alpha, _ = books
    headers = alpha.headers[role]
    collections = await api.client.get("/v1/reports/collections", params=MARCH, headers=headers)
    assert collections.status_code == 200, collections.text
    assert collections.json()["totals"] == [
        {
            "currency": "USD",
            "payments": 1,
            "collected": 2_500,
            "refunds": 0,
            "refunded": 0,
            "net": 2_500,
        }
    ]
    assert collections.json()["by_collector"][0]["collector_id"] == str(alpha.id_of("collector"))

    aging = await api.client.get("/v1/reports/aging", headers=headers)
    assert aging.status_code == 200, aging.text
    assert aging.json()["as_of"] == "2026-03-02"  # today, by the app's clock
    (usd,) = aging.json()["currencies"]
    assert (usd["accounts"], usd["balance"]) == (1, 97_500)
    assert usd["buckets"][-1] == {"bucket": "unknown", "accounts": 1, "balance": 97_500}

    recovery = await api.client.get("/v1/reports/recovery", params=MARCH, headers=headers)
    assert recovery.status_code == 200, recovery.text
    assert recovery.json()["by_creditor"] == [
        {
            "original_creditor": "First Bank",
            "currency": "USD",
            "accounts": 1,
            "placed": 100_000,
            "collected": 2_500,
            "recovery_rate_bps": 250,
        }
    ]

    performance = await api.client.get(
        "/v1/reports/collector-performance", params=MARCH, headers=headers
    )
    assert performance.status_code == 200, performance.text
    lines = {line["collector_id"]: line for line in performance.json()["collectors"]}
    assert set(lines) == {str(alpha.id_of("collector")), str(alpha.id_of("colleague"))}
    mine = lines[str(alpha.id_of("collector"))]
    assert mine["accounts_assigned"] == 1
    assert mine["activities"]["promise_to_pay"] == 1
    assert mine["promises_to_pay"] == [{"currency": "USD", "count": 1, "amount": 2_500}]
    assert mine["payments"] == [{"currency": "USD", "count": 1, "amount": 2_500}]

    imports = await api.client.get("/v1/reports/imports", params=MARCH, headers=headers)
    assert imports.status_code == 200, imports.text
    totals = imports.json()["totals"]
    assert (totals["runs"], totals["rows_read"], totals["rows_failed"]) == (1, 2_500, 1)
    assert totals["error_rate_bps"] == 4  # 1 / 2500 = 4 basis points
    assert [line["file_source_id"] for line in imports.json()["by_source"]] == [None]


async def test_another_agencys_data_never_shows(api, books):
    alpha, beta = books
    for path, params in ROUTES.items():
        seen = {}
        for tenant in (alpha, beta):
            response = await api.client.get(path, params=params, headers=tenant.headers["admin"])
            assert response.status_code == 200, response.text
            seen[tenant.slug] = response.text
        assert str(beta.id_of("collector")) not in seen["alpha"], path
        assert str(alpha.id_of("collector")) not in seen["beta"], path
    beta_collections = await api.client.get(
        "/v1/reports/collections", params=MARCH, headers=beta.headers["readonly"]
    )
    assert beta_collections.json()["totals"][0]["collected"] == 7_000


async def test_collectors_may_not_read_reports(api, books):
    alpha, _ = books
    for path, params in ROUTES.items():
        response = await api.client.get(path, params=params, headers=alpha.headers["collector"])
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_reports_need_a_token(api):
    for path, params in ROUTES.items():
        assert (await api.client.get(path, params=params)).status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/reports/collections", {"from": "2026-03-31", "to": "2026-03-01"}, "to"),
        ("/v1/reports/collections", {"from": "2025-01-01", "to": "2026-01-02"}, "to"),
        ("/v1/reports/recovery", {"from": "0001-01-01", "to": "0001-01-31"}, "from"),
        ("/v1/reports/collector-performance", {"from": "9999-12-01", "to": "9999-12-31"}, "to"),
        ("/v1/reports/aging", {"as_of": "0001-01-01"}, "as_of"),
    ],
)
async def test_parameters_that_break_a_rule_are_422_naming_the_field(
    api, alpha, path, params, field
):
    response = await api.client.get(path, params=params, headers=alpha.headers["admin"])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/reports/collections", {"from": "March", "to": "2026-03-31"}, "from"),
        ("/v1/reports/recovery", {"from": "2026-03-01"}, "to"),
        ("/v1/reports/collector-performance", {"to": "2026-03-01"}, "from"),
        ("/v1/reports/aging", {"as_of": "2026-02-30"}, "as_of"),
        ("/v1/reports/imports", {"from": "2026-03-01", "to": "01/03/2026"}, "to"),
    ],
)
async def test_missing_or_malformed_dates_are_422_naming_the_field(api, alpha, path, params, field):
    response = await api.client.get(path, params=params, headers=alpha.headers["readonly"])
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_period_of_366_days_is_accepted(api, alpha):
    params = {"from": "2024-01-01", "to": "2024-12-31"}  # a leap year, both days included
    response = await api.client.get(
        "/v1/reports/collections", params=params, headers=alpha.headers["admin"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["totals"] == []


async def test_the_largest_balances_add_up_without_overflowing(api, alpha):
    # SQLite's SUM stops at a signed 64-bit integer: amounts are bounded so that no
    # realistic number of them reaches it.
    for number in range(3):
        await alpha.account(f"BIG-{number}", balance=MAX_AMOUNT)
    headers = alpha.headers["admin"]
    aging = await api.client.get("/v1/reports/aging", headers=headers)
    assert aging.status_code == 200, aging.text
    (usd,) = aging.json()["currencies"]
    assert (usd["accounts"], usd["balance"]) == (3, 3 * MAX_AMOUNT)
    recovery = await api.client.get("/v1/reports/recovery", headers=headers, params=MARCH)
    assert recovery.status_code == 200, recovery.text
    assert recovery.json()["by_creditor"][0]["placed"] == 3 * MAX_AMOUNT
    over = await api.client.post(
        "/v1/accounts",
        headers=headers,
        json={
            "debtor_id": str((await alpha.debtor()).id),
            "external_id": "OVER",
            "original_creditor": "Bank",
            "currency": "USD",
            "placed_balance": MAX_AMOUNT + 1,
        },
    )
    assert over.status_code == 422
    assert over.json()["errors"] == [
        {"field": "placed_balance", "message": "must be at most 1000000000000 minor units"}
    ]
