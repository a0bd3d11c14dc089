"""Who is calling: the bearer token of the request, turned into the core's Actor."""

from __future__ import annotations

from typing import Any

from dishka import AsyncContainer, Provider, Scope, provide
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from debtflow_core.actor import Actor
from debtflow_core.errors import Unauthenticated
from debtflow_core.use_cases.auth import Authenticate

BEARER = "BearerToken"
"""The OpenAPI security scheme of every route that needs a signed-in user."""

SECURED = [{BEARER: []}]


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app's guard: a route that declares the bearer scheme checks the token before
    anything else of the request is read. An anonymous caller's body (an upload of 256
    MiB, say) then costs a 401 and nothing more, and the OpenAPI document's security and
    the check cannot drift apart."""
    if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_security():
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an access token: Authorization: Bearer <token>")
    container: AsyncContainer = connection.state.dishka_container
    authenticate = await container.get(Authenticate)
    connection.state.actor = await authenticate.execute(token.strip())


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
