from __future__ import annotations

import msgspec
from dishka import FromDishka
from litestar import Controller, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from debtflow_adapters.health import Readiness, ReadinessReport


class Liveness(msgspec.Struct, frozen=True):
    status: str = "ok"


class HealthController(Controller):
    tags = ["health"]

    @get(
        "/health",
        operation_id="getHealth",
        summary="Liveness",
        description="The process is up and serving; checks nothing else.",
    )
    async def health(self) -> Liveness:
        return Liveness()

    @get(
        "/ready",
        operation_id="getReadiness",
        summary="Readiness",
        description="Each dependency's state: the database (down, too, while its schema is "
        "older than this release's), Redis and the broker (when configured) and object "
        "storage, all required; each payment gateway's circuit "
        "breaker, reported down while it is open but not required (all else still works). "
        "503 when a required one is down, so a load balancer stops sending traffic.",
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=ReadinessReport, description="A required dependency is down."
            )
        },
    )
    async def ready(self, readiness: FromDishka[Readiness]) -> Response[ReadinessReport]:
        report = await readiness.check()
        return Response(
            report, status_code=HTTP_200_OK if report.ready else HTTP_503_SERVICE_UNAVAILABLE
        )
