"""The yardstick: a bare Litestar route answering fixed JSON bytes from memory.

It does what every request to the API has to do anyway (HTTP parsing, routing, writing the
response) and nothing else: no authentication, no database, no encoding. The bytes are a
real page of the API, read from the file named by ``BENCH_BARE_BODY`` when a server process
imports this module. Serve it with ``uvicorn bare_app:app --app-dir bench``.
"""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar, Response, get

BODY = Path(os.environ["BENCH_BARE_BODY"]).read_bytes()


@get("/v1/accounts", sync_to_thread=False)
def accounts() -> Response[bytes]:
    return Response(BODY, media_type="application/json")


app = Litestar(route_handlers=[accounts], openapi_config=None, logging_config=None)
