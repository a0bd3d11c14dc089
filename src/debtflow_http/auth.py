"""Who is calling: the bearer token of the request, turned into the core's Actor."""

from __future__ import annotations

from dishka import Provider, Scope, provide
from litestar import Request

from debtflow_core.actor import Actor
from debtflow_core.errors import Unauthenticated
from debtflow_core.use_cases.auth import Authenticate

BEARER = "BearerToken"
"""The OpenAPI security scheme of every route that needs a signed-in user."""

SECURED = [{BEARER: []}]


class ActorProvider(Provider):
    """Gives handlers the Actor of the request; the token is checked only when one asks."""

    @provide(scope=Scope.REQUEST)
    async def actor(self, request: Request, authenticate: Authenticate) -> Actor:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send an access token: Authorization: Bearer <token>")
        return await authenticate.execute(token.strip())
