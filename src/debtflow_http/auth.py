"""Who is calling: the bearer token of the request, turned into the core's Actor."""

from __future__ import annotations

from typing import Any

from dishka import AsyncContainer, Provider, Scope, provide
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.types import Message
from litestar.types import Scope as AsgiScope

from debtflow_core.actor import Actor
from debtflow_core.errors import Unauthenticated
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.auth import Authenticate

BEARER = "BearerToken"
"""The OpenAPI security scheme of every route that needs a signed-in user."""

SECURED = [{BEARER: []}]

# Where the guard leaves the unit of work it asked to keep a connection for the handler.
_KEPT = "debtflow.kept_for_handler"


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app's guard: a route that declares the bearer scheme checks the token before
    anything else of the request is read, but a small body (:data:`_READ_FIRST`). An
    anonymous caller's upload of 256 MiB, say, then costs a 401 and nothing more, and the
    OpenAPI document's security and the check cannot drift apart."""
    if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_security():
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an access token: Authorization: Bearer <token>")
    container: AsyncContainer = connection.state.dishka_container
    if await _all_received(connection):
        # Nothing more comes from the client between the check and the handler: its first
        # block may run on the check's connection, one taken from the pool instead of two.
        # Never across a body still to come, which a client may send as slowly as it likes
        # while the connection waits with it.
        uow = await container.get(UnitOfWork)
        uow.keep_for_next_block()
        connection.state[_KEPT] = uow
    authenticate = await container.get(Authenticate)
    connection.state.actor = await authenticate.execute(token.strip())


_READ_FIRST = 64 * 1024
"""The largest body read before the token check (an API call's JSON, not an upload): read
first, it holds no connection however slowly it comes, and the check's connection can then
serve the operation too."""


async def _all_received(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request has come whole: it has no body, or a small one, read now (the
    request keeps it for the handler). HTTP/1.1, the one version uvicorn serves, announces
    a body by Content-Length or Transfer-Encoding (RFC 9112, section 6)."""
    headers = connection.headers
    if "transfer-encoding" in headers:
        return False
    length = headers.get("content-length", "0")
    if length == "0":
        return True
    if not isinstance(connection, Request) or not length.isdigit() or int(length) > _READ_FIRST:
        return False
    await connection.body()
    return True


async def give_back_kept_connection(message: Message, scope: AsgiScope) -> None:
    """A ``before_send`` hook: when the answer starts, the connection the guard kept for a
    handler that did not use it (a report reads on a connection of its own) goes back to
    the pool, before a client that reads slowly (a streamed CSV) can make it wait."""
    if message["type"] == "http.response.start" and (uow := scope["state"].pop(_KEPT, None)):
        await uow.release()


class ActorProvider(Provider):
    """Gives handlers the Actor that :func:`authenticated` found for the request."""

    @provide(scope=Scope.REQUEST)
    def actor(self, request: Request) -> Actor:
        actor: Actor | None = request.state.get("actor")
        if actor is None:  # a mistake in the app, not the caller's
            raise RuntimeError(
                f"{request.method} {request.scope['path']} asks for the Actor without "
                "declaring security=SECURED, which makes the guard check the token"
            )
        return actor
