from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from dishka import FromDishka
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK

from debtflow_core.actor import Actor
from debtflow_core.domain.user import Role, User
from debtflow_core.pagination import Page
from debtflow_core.use_cases.users import (
    ChangeUserRole,
    CreateUser,
    DeactivateUser,
    GetUser,
    ListUsers,
    NewUser,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.resources.created import Located, located
from debtflow_http.resources.paging import Cursor, Limit

NewUserBody = Annotated[
    NewUser,
    example(
        "A new collector",
        {
            "email": "carla@acme.example",
            "full_name": "Carla Diaz",
            "role": "collector",
            "password": "a long passphrase",
        },
    ),
]


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    """A user as the API shows it: never with a password or its hash."""

    id: UUID
    agency_id: UUID
    email: str
    full_name: str
    role: Role
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=user.id,
            agency_id=user.agency_id,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            active=user.active,
            created_at=user.created_at,
        )


class RoleChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Role


RoleChangeBody = Annotated[
    RoleChange,
    example(
        "Make read-only",
        {"role": "readonly"},
    ),
]


class UserController(Controller):
    path = "/v1/users"
    tags = ["users"]
    security = SECURED

    @get(
        "/",
        operation_id="listUsers",
        summary="List the agency's users",
        description=ListUsers.__doc__,
        responses=errors(400, 401, 403, 422),
    )
    async def list_users(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[ListUsers],
        role: Annotated[
            Role | None, QueryParameter(description="Only users with this role")
        ] = None,
        active: Annotated[
            bool | None,
            QueryParameter(description="`true`: only active users; `false`: only deactivated ones"),
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[UserView]:
        page = await use.execute(actor, role=role, active=active, limit=limit, cursor=cursor)
        return Page(items=[UserView.of(u) for u in page.items], next_cursor=page.next_cursor)

    @post(
        "/",
        operation_id="createUser",
        summary="Add a user",
        description=CreateUser.__doc__,
        responses=errors(400, 401, 403, 409, 422),
        operation_class=Located,
    )
    async def create_user(
        self, data: NewUserBody, actor: FromDishka[Actor], use: FromDishka[CreateUser]
    ) -> Response[UserView]:
        user = UserView.of(await use.execute(actor, data))
        return located(user, f"/v1/users/{user.id}")

    @get(
        "/{user_id:uuid}",
        operation_id="getUser",
        summary="One user",
        description=GetUser.__doc__,
        responses=errors(400, 401, 403, 404),
    )
    async def get_user(
        self, user_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetUser]
    ) -> UserView:
        return UserView.of(await use.execute(actor, user_id))

    @patch(
        "/{user_id:uuid}",
        operation_id="changeUserRole",
        summary="Change a user's role",
        description=ChangeUserRole.__doc__,
        responses=errors(400, 401, 403, 404, 409),
    )
    async def change_role(
        self,
        user_id: FromPath[UUID],
        data: RoleChangeBody,
        actor: FromDishka[Actor],
        use: FromDishka[ChangeUserRole],
    ) -> UserView:
        return UserView.of(await use.execute(actor, user_id, data.role))

    @post(
        "/{user_id:uuid}/deactivate",
        status_code=HTTP_200_OK,
        operation_id="deactivateUser",
        summary="Deactivate a user",
        description=DeactivateUser.__doc__,
        responses=errors(400, 401, 403, 404, 409),
    )
    async def deactivate(
        self, user_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[DeactivateUser]
    ) -> UserView:
        return UserView.of(await use.execute(actor, user_id))
