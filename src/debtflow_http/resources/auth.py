from __future__ import annotations

from typing import Annotated

import msgspec
from dishka import FromDishka
from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from debtflow_core.actor import Actor
from debtflow_core.use_cases.auth import Credentials, Login, Logout, Refresh, TokenPair
from debtflow_core.use_cases.users import GetUser
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.resources.users import UserView


class TokenRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


TokenRequestBody = Annotated[
    TokenRequest,
    example(
        "Sign in",
        {"email": "admin@demo.example.com", "password": "demo-admin-password"},
    ),
]


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=256)]


RefreshRequestBody = Annotated[
    RefreshRequest,
    example(
        "Rotate",
        {"refresh_token": "Q2hhbmdlIG1lIGZvciB0aGUgb25lIHlvdSBnb3Q"},
    ),
]


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]

    @post(
        "/token",
        status_code=HTTP_200_OK,
        operation_id="createToken",
        summary="Sign in",
        description=Login.__doc__,
        responses=errors(400, 401, 429),
    )
    async def token(
        self, data: TokenRequestBody, request: Request, login: FromDishka[Login]
    ) -> TokenPair:
        # Under `debtflow serve`, uvicorn has put the client's address from X-Forwarded-For
        # in place of a trusted proxy's (DEBTFLOW_FORWARDED_ALLOW_IPS): otherwise every
        # client behind a load balancer would share the balancer's login throttle.
        client = request.client.host if request.client else "unknown"
        return await login.execute(
            Credentials(email=data.email, password=data.password, client=client)
        )

    @post(
        "/refresh",
        status_code=HTTP_200_OK,
        operation_id="refreshToken",
        summary="Rotate a refresh token",
        description=Refresh.__doc__,
        responses=errors(400, 401),
    )
    async def refresh(self, data: RefreshRequestBody, refresh: FromDishka[Refresh]) -> TokenPair:
        return await refresh.execute(data.refresh_token)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        operation_id="logout",
        summary="Sign out",
        description=Logout.__doc__,
        security=SECURED,
        responses=errors(401),
    )
    async def logout(self, actor: FromDishka[Actor], logout: FromDishka[Logout]) -> None:
        await logout.execute(actor)


class MeController(Controller):
    path = "/v1/me"
    tags = ["auth"]
    security = SECURED

    @get(
        "/",
        operation_id="getMe",
        summary="The signed-in user",
        description="Who the access token speaks for: the user as stored now.",
        responses=errors(401),
    )
    async def me(self, actor: FromDishka[Actor], get_user: FromDishka[GetUser]) -> UserView:
        assert actor.user_id is not None  # a token always names its user
        return UserView.of(await get_user.execute(actor, actor.user_id))
