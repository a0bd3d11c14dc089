from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from dishka import FromDishka
from litestar import Controller, Response, delete, get, post, put
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK

from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.activity import Activity
from debtflow_core.domain.payment import Payment
from debtflow_core.pagination import Page
from debtflow_core.ports.accounts import AccountSort
from debtflow_core.use_cases.accounts import (
    AccountFilters,
    AssignCollector,
    ChangeAccountStatus,
    GetAccount,
    ListAccounts,
    NewAccount,
    PlaceAccount,
    UnassignCollector,
)
from debtflow_core.use_cases.activities import ListActivities, NewActivity, RecordActivity
from debtflow_core.use_cases.payments import ListPayments
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.resources.created import Located, located
from debtflow_http.resources.paging import Cursor, Limit

BALANCE_BOUND = "Minor units, inclusive; below zero is a credit owed to the debtor"

NewAccountBody = Annotated[
    NewAccount,
    example(
        "Place a credit-card debt",
        {
            "debtor_id": "7a1c2d3e-4f50-4a6b-8c9d-0e1f2a3b4c5d",
            "external_id": "FB-2024-000123",
            "original_creditor": "First Bank",
            "currency": "USD",
            "placed_balance": 125000,
            "charge_off_date": "2025-06-30",
        },
    ),
]


NewActivityBody = Annotated[
    NewActivity,
    example(
        "A promise to pay",
        {
            "type": "promise_to_pay",
            "outcome": "promised",
            "note": "Pays on Friday",
            "promise": {"amount": 25000, "due_on": "2026-12-04"},
        },
    ),
]


class StatusChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: AccountStatus


StatusChangeBody = Annotated[
    StatusChange,
    example(
        "Close an account",
        {"status": "closed"},
    ),
]


class Assignment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    collector_id: UUID


AssignmentBody = Annotated[
    Assignment,
    example(
        "Assign to a collector",
        {"collector_id": "c0ffee00-1234-4abc-8def-0123456789ab"},
    ),
]


class AccountController(Controller):
    path = "/v1/accounts"
    tags = ["accounts"]
    security = SECURED

    @get(
        "/",
        operation_id="listAccounts",
        summary="List accounts",
        description=ListAccounts.__doc__,
        responses=errors(400, 401, 422),
    )
    async def list_accounts(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[ListAccounts],
        status: Annotated[AccountStatus | None, QueryParameter()] = None,
        collector_id: Annotated[
            UUID | None, QueryParameter(description="Assigned collector")
        ] = None,
        unassigned: Annotated[
            bool, QueryParameter(description="Only accounts with no collector")
        ] = False,
        min_balance: Annotated[int | None, QueryParameter(description=BALANCE_BOUND)] = None,
        max_balance: Annotated[int | None, QueryParameter(description=BALANCE_BOUND)] = None,
        text: Annotated[
            str | None,
            QueryParameter(
                max_length=200, description="Part of the debtor's name or the external id"
            ),
        ] = None,
        sort: Annotated[AccountSort, QueryParameter()] = AccountSort.NEWEST,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Account]:
        filters = AccountFilters(
            status=status,
            collector_id=collector_id,
            unassigned=unassigned,
            min_balance=min_balance,
            max_balance=max_balance,
            text=text,
            sort=sort,
        )
        return await use.execute(actor, filters, limit=limit, cursor=cursor)

    @post(
        "/",
        operation_id="placeAccount",
        summary="Place an account",
        description=PlaceAccount.__doc__,
        responses=errors(400, 401, 403, 409, 422),
        operation_class=Located,
    )
    async def place_account(
        self, data: NewAccountBody, actor: FromDishka[Actor], use: FromDishka[PlaceAccount]
    ) -> Response[Account]:
        account = await use.execute(actor, data)
        return located(account, f"/v1/accounts/{account.id}")

    @get(
        "/{account_id:uuid}",
        operation_id="getAccount",
        summary="One account",
        description=GetAccount.__doc__,
        responses=errors(400, 401, 404),
    )
    async def get_account(
        self, account_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetAccount]
    ) -> Account:
        return await use.execute(actor, account_id)

    @put(
        "/{account_id:uuid}/status",
        operation_id="changeAccountStatus",
        summary="Change an account's status",
        description=ChangeAccountStatus.__doc__,
        responses=errors(400, 401, 403, 404, 409),
    )
    async def change_status(
        self,
        account_id: FromPath[UUID],
        data: StatusChangeBody,
        actor: FromDishka[Actor],
        use: FromDishka[ChangeAccountStatus],
    ) -> Account:
        return await use.execute(actor, account_id, data.status)

    @put(
        "/{account_id:uuid}/collector",
        operation_id="assignCollector",
        summary="Assign a collector",
        description=AssignCollector.__doc__,
        responses=errors(400, 401, 403, 404, 422),
    )
    async def assign(
        self,
        account_id: FromPath[UUID],
        data: AssignmentBody,
        actor: FromDishka[Actor],
        use: FromDishka[AssignCollector],
    ) -> Account:
        return await use.execute(actor, account_id, data.collector_id)

    @delete(
        "/{account_id:uuid}/collector",
        status_code=HTTP_200_OK,
        operation_id="unassignCollector",
        summary="Unassign the collector",
        description=UnassignCollector.__doc__,
        responses=errors(400, 401, 403, 404),
    )
    async def unassign(
        self,
        account_id: FromPath[UUID],
        actor: FromDishka[Actor],
        use: FromDishka[UnassignCollector],
    ) -> Account:
        return await use.execute(actor, account_id)

    @get(
        "/{account_id:uuid}/activities",
        operation_id="listActivities",
        summary="An account's activities",
        description=ListActivities.__doc__,
        responses=errors(400, 401, 404, 422),
    )
    async def list_activities(
        self,
        account_id: FromPath[UUID],
        actor: FromDishka[Actor],
        use: FromDishka[ListActivities],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Activity]:
        return await use.execute(actor, account_id, limit=limit, cursor=cursor)

    @post(
        "/{account_id:uuid}/activities",
        operation_id="recordActivity",
        summary="Record an activity",
        description=RecordActivity.__doc__,
        responses=errors(400, 401, 403, 404, 409, 422),
    )
    async def record_activity(
        self,
        account_id: FromPath[UUID],
        data: NewActivityBody,
        actor: FromDishka[Actor],
        use: FromDishka[RecordActivity],
    ) -> Activity:
        return await use.execute(actor, account_id, data)

    @get(
        "/{account_id:uuid}/payments",
        operation_id="listAccountPayments",
        summary="An account's payments",
        description=ListPayments.__doc__,
        responses=errors(400, 401, 404, 422),
    )
    async def list_payments(
        self,
        account_id: FromPath[UUID],
        actor: FromDishka[Actor],
        use: FromDishka[ListPayments],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Payment]:
        return await use.execute(actor, account_id=account_id, limit=limit, cursor=cursor)
