"""ASGI middleware: a request id on every response and log line, security headers, and one
JSON access-log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from debtflow_adapters.logs import request_id_var

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept only if it is short and plain, so it can't forge log lines.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
]
# The API answers JSON only; the documentation pages under /schema load their scripts.
_API_ONLY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]

access_log = logging.getLogger("debtflow.http.access")


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Tag the request with an id (the caller's ``X-Request-ID`` or a new UUID), echo it,
    add the security headers, and log method, path, status and duration when it ends."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = incoming.decode() if _ACCEPTABLE_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        api = not scope["path"].startswith("/schema")

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                headers.extend(_SECURITY_HEADERS)
                if api:
                    headers.extend(_API_ONLY_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)

    return middleware
