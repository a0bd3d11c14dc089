from __future__ import annotations

from typing import Annotated
from uuid import UUID

from dishka import FromDishka
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, QueryParameter

from debtflow_core.actor import Actor
from debtflow_core.domain.debtor import Debtor
from debtflow_core.pagination import Page
from debtflow_core.use_cases.debtors import (
    CreateDebtor,
    DebtorChanges,
    GetDebtor,
    NewDebtor,
    SearchDebtors,
    UpdateDebtor,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.resources.created import Located, located
from debtflow_http.resources.paging import Cursor, Limit

NewDebtorBody = Annotated[
    NewDebtor,
    example(
        "A debtor with contact points",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "external_id": "D-1001",
            "date_of_birth": "1985-12-10",
            "phones": [{"number": "+15555550100", "kind": "mobile"}],
            "emails": ["ada@example.com"],
            "address": {
                "line1": "1 Analytical Way",
                "city": "Austin",
                "state": "TX",
                "postal_code": "73301",
                "time_zone": "America/Chicago",
            },
        },
    ),
]

DebtorChangesBody = Annotated[
    DebtorChanges,
    example(
        "Correct the surname and stop calls",
        {"last_name": "King", "contact_preferences": {"do_not_call": True}},
    ),
]


class DebtorController(Controller):
    path = "/v1/debtors"
    tags = ["debtors"]
    security = SECURED

    @get(
        "/",
        operation_id="listDebtors",
        summary="List or search debtors",
        description=SearchDebtors.__doc__,
        responses=errors(400, 401, 422),
    )
    async def list_debtors(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[SearchDebtors],
        text: Annotated[
            str | None,
            QueryParameter(description="Part of the name or external id", max_length=200),
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Debtor]:
        return await use.execute(actor, text=text, limit=limit, cursor=cursor)

    @post(
        "/",
        operation_id="createDebtor",
        summary="Add a debtor",
        description=CreateDebtor.__doc__,
        responses=errors(400, 401, 403, 409, 422),
        operation_class=Located,
    )
    async def create_debtor(
        self, data: NewDebtorBody, actor: FromDishka[Actor], use: FromDishka[CreateDebtor]
    ) -> Response[Debtor]:
        debtor = await use.execute(actor, data)
        return located(debtor, f"/v1/debtors/{debtor.id}")

    @get(
        "/{debtor_id:uuid}",
        operation_id="getDebtor",
        summary="One debtor",
        description=GetDebtor.__doc__,
        responses=errors(400, 401, 404),
    )
    async def get_debtor(
        self, debtor_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetDebtor]
    ) -> Debtor:
        return await use.execute(actor, debtor_id)

    @patch(
        "/{debtor_id:uuid}",
        operation_id="updateDebtor",
        summary="Correct a debtor",
        description=UpdateDebtor.__doc__,
        responses=errors(400, 401, 403, 404, 409, 422),
    )
    async def update_debtor(
        self,
        debtor_id: FromPath[UUID],
        data: DebtorChangesBody,
        actor: FromDishka[Actor],
        use: FromDishka[UpdateDebtor],
    ) -> Debtor:
        return await use.execute(actor, debtor_id, data)
