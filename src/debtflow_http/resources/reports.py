"""Reports as JSON: ``GET /v1/reports/…``, bounded by their parameters, never paginated."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from dishka import FromDishka
from litestar import Controller, get
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from debtflow_core.actor import Actor
from debtflow_core.errors import ValidationFailed
from debtflow_core.use_cases.reports import (
    MAX_PERIOD_DAYS,
    AgeBalances,
    AgingReport,
    CollectionsSummary,
    ImportsReport,
    MeasureCollectorPerformance,
    MeasureRecovery,
    PerformanceReport,
    RecoveryReport,
    ReportPeriod,
    SummarizeCollections,
    SummarizeImports,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors

# Dates come in as text and are decoded here, so that a missing or malformed one is a 422
# naming the parameter as the client spelled it (``from``, not the handler's ``from_``).
From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        required=True,
        description="First UTC day of the period, included (YYYY-MM-DD).",
        schema_extra={"format": "date"},
        examples=[Example(value="2026-01-01")],
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        required=True,
        description=f"Last UTC day of the period, included; at most "
        f"{MAX_PERIOD_DAYS} days from `from`, counting both (YYYY-MM-DD).",
        schema_extra={"format": "date"},
        examples=[Example(value="2026-01-31")],
    ),
]
AsOf = Annotated[
    str | None,
    QueryParameter(
        description="The day ages are counted to (YYYY-MM-DD); today (UTC) when omitted.",
        schema_extra={"format": "date"},
        examples=[Example(value="2026-02-15")],
    ),
]


def _date(value: str | None, field: str) -> date:
    if value is None:
        raise ValidationFailed("is required (YYYY-MM-DD)", field=field)
    try:
        return msgspec.convert(value, date)
    except msgspec.ValidationError:
        raise ValidationFailed("must be a date, YYYY-MM-DD", field=field) from None


def _period(from_: str | None, to: str | None) -> ReportPeriod:
    return ReportPeriod(from_=_date(from_, "from"), to=_date(to, "to"))


COLLECTOR = "3f2b9c1e-8d4a-4f6b-9a2e-5c7d1e0b4a11"
PROCESSOR = "5b6c7d8e-9f01-4a23-8b45-6c7d8e9f0a1b"
SOURCE = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


def _ok(data: type, summary: str, value: dict[str, Any]) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            data_container=data,
            description="The report.",
            examples=[Example(summary=summary, value=value)],
        ),
        **errors(400, 401, 403, 422),
    }


def _collected(**fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "currency": "USD",
        "payments": 3,
        "collected": 31000,
        "refunds": 1,
        "refunded": 4000,
        "net": 27000,
    }


def _imports(**fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "runs": 4,
        "runs_by_status": {
            "queued": 0,
            "running": 0,
            "succeeded": 3,
            "partially_failed": 1,
            "failed": 0,
        },
        "rows_read": 20000,
        "rows_created": 18000,
        "rows_updated": 1950,
        "rows_failed": 50,
        "error_rate_bps": 25,
    }


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["reports"]
    security = SECURED

    @get(
        "/collections",
        operation_id="summarizeCollections",
        summary="Collections in a period",
        description=SummarizeCollections.__doc__,
        responses=_ok(
            CollectionsSummary,
            "January in one currency",
            {
                "from": "2026-01-01",
                "to": "2026-01-31",
                "totals": [_collected()],
                "by_collector": [_collected(collector_id=COLLECTOR)],
                "by_processor": [_collected(processor_id=PROCESSOR)],
                "by_day": [_collected(day="2026-01-05")],
            },
        ),
    )
    async def collections(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[SummarizeCollections],
        from_: From = None,
        to: To = None,
    ) -> CollectionsSummary:
        return await use.execute(actor, _period(from_, to))

    @get(
        "/aging",
        operation_id="ageBalances",
        summary="Balances by days since charge-off",
        description=AgeBalances.__doc__,
        responses=_ok(
            AgingReport,
            "One currency",
            {
                "as_of": "2026-02-15",
                "currencies": [
                    {
                        "currency": "USD",
                        "accounts": 3,
                        "balance": 175000,
                        "buckets": [
                            {"bucket": "0-90", "accounts": 2, "balance": 150000},
                            {"bucket": "91-180", "accounts": 0, "balance": 0},
                            {"bucket": "181-365", "accounts": 1, "balance": 25000},
                            {"bucket": "1-2y", "accounts": 0, "balance": 0},
                            {"bucket": "over-2y", "accounts": 0, "balance": 0},
                            {"bucket": "unknown", "accounts": 0, "balance": 0},
                        ],
                    }
                ],
            },
        ),
    )
    async def aging(
        self, actor: FromDishka[Actor], use: FromDishka[AgeBalances], as_of: AsOf = None
    ) -> AgingReport:
        return await use.execute(actor, None if as_of is None else _date(as_of, "as_of"))

    @get(
        "/recovery",
        operation_id="measureRecovery",
        summary="Recovery of what was placed in a period",
        description=MeasureRecovery.__doc__,
        responses=_ok(
            RecoveryReport,
            "One creditor, one month",
            {
                "from": "2026-01-01",
                "to": "2026-01-31",
                "by_creditor_and_month": [
                    {
                        "original_creditor": "First Bank",
                        "month": "2026-01",
                        "currency": "USD",
                        "accounts": 2,
                        "placed": 120000,
                        "collected": 27000,
                        "recovery_rate_bps": 2250,
                    }
                ],
                "by_creditor": [
                    {
                        "original_creditor": "First Bank",
                        "currency": "USD",
                        "accounts": 2,
                        "placed": 120000,
                        "collected": 27000,
                        "recovery_rate_bps": 2250,
                    }
                ],
                "by_month": [
                    {
                        "month": "2026-01",
                        "currency": "USD",
                        "accounts": 2,
                        "placed": 120000,
                        "collected": 27000,
                        "recovery_rate_bps": 2250,
                    }
                ],
            },
        ),
    )
    async def recovery(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[MeasureRecovery],
        from_: From = None,
        to: To = None,
    ) -> RecoveryReport:
        return await use.execute(actor, _period(from_, to))

    @get(
        "/collector-performance",
        operation_id="measureCollectorPerformance",
        summary="What each collector did in a period",
        description=MeasureCollectorPerformance.__doc__,
        responses=_ok(
            PerformanceReport,
            "One collector",
            {
                "from": "2026-01-01",
                "to": "2026-01-31",
                "collectors": [
                    {
                        "collector_id": COLLECTOR,
                        "accounts_assigned": 12,
                        "activities": {
                            "call": 30,
                            "email": 4,
                            "letter": 0,
                            "sms": 2,
                            "note": 7,
                            "promise_to_pay": 3,
                            "dispute": 0,
                            "cease_communication": 0,
                        },
                        "promises_to_pay": [{"currency": "USD", "count": 3, "amount": 45000}],
                        "payments": [{"currency": "USD", "count": 2, "amount": 27000}],
                    }
                ],
            },
        ),
    )
    async def performance(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[MeasureCollectorPerformance],
        from_: From = None,
        to: To = None,
    ) -> PerformanceReport:
        return await use.execute(actor, _period(from_, to))

    @get(
        "/imports",
        operation_id="summarizeImports",
        summary="Placement imports in a period",
        description=SummarizeImports.__doc__,
        responses=_ok(
            ImportsReport,
            "One source",
            {
                "from": "2026-01-01",
                "to": "2026-01-31",
                "totals": _imports(),
                "by_source": [_imports(file_source_id=SOURCE)],
            },
        ),
    )
    async def imports(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[SummarizeImports],
        from_: From = None,
        to: To = None,
    ) -> ImportsReport:
        return await use.execute(actor, _period(from_, to))
