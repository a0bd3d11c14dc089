from __future__ import annotations

from litestar import Controller, MediaType, Response, get

from debtflow_adapters.prometheus.exposition import CONTENT_TYPE, render


class MetricsController(Controller):
    tags = ["health"]

    @get(
        "/metrics",
        operation_id="getMetrics",
        summary="Prometheus metrics",
        description="Requests, background tasks, payments, imports, webhooks and circuit "
        "breakers in Prometheus' text format, summed over every server process. Public like "
        "`/health`: keep it off the public network. The metrics are listed in "
        "docs/metrics.md.",
        media_type=MediaType.TEXT,
    )
    async def metrics(self) -> Response[bytes]:
        return Response(render(), media_type=CONTENT_TYPE)
