"""ASGI middleware counting requests and timing them, by method, route template and status.

Not ``litestar.plugins.prometheus``: its middleware sits inside Litestar's routing, so a
request no route matches (a 404 on an unknown path) is never counted, and it builds a
Request and label dicts for every request.
"""

from __future__ import annotations

import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client.metrics import Counter, Histogram

from debtflow_adapters.prometheus.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    UNMATCHED_ROUTE,
)

_Series = tuple[Counter, Histogram]
# The label children of each (method, route, status) seen, so that a request costs a dict
# lookup rather than prometheus-client's label validation. Bounded: routes are templates,
# and a method is one of these or "OTHER" (anyone may send a request with a made-up one).
_series: dict[tuple[str, str, int], _Series] = {}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _series_of(method: str, route: str, status: int) -> _Series:
    key = (method, route, status)
    series = _series.get(key)
    if series is None:
        labels = (method, route, str(status))
        series = _series[key] = (
            HTTP_REQUESTS.labels(*labels),
            HTTP_REQUEST_DURATION.labels(*labels),
        )
    return series


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count and time every HTTP request. The route is Litestar's path template, read
    once the router has matched it; a request that matched none is :data:`UNMATCHED_ROUTE`.
    A request whose handler raised past Litestar counts as a 500."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            route = scope.get("path_template") or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            requests, duration = _series_of(method, route, status)
            requests.inc()
            duration.observe(time.perf_counter() - started)

    return middleware
