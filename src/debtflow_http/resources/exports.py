"""``/v1/exports``: reports as CSV files, written by the workers, downloaded by link."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from dishka import FromDishka
from litestar import Controller, Response, get, post, put
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from debtflow_core.actor import Actor
from debtflow_core.domain.export import Export, ExportKind, ExportStatus, NightlyExports
from debtflow_core.pagination import Page
from debtflow_core.use_cases.exports import (
    ChooseNightlyExports,
    ExportWithLink,
    GetExport,
    GetNightlyExports,
    ListExports,
    NewExport,
    NightlyChoice,
    RequestExport,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.resources.created import Located, located
from debtflow_http.resources.paging import Cursor, Limit

_ID = "9a7b5c3d-1e2f-4a6b-8c0d-2e4f6a8b0c1d"
_AGENCY = "4d5e6f70-8192-4a3b-9c4d-5e6f70819203"
_ADMIN = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
_QUEUED = {
    "id": _ID,
    "agency_id": _AGENCY,
    "kind": "collections",
    "parameters": {"from": "2026-01-01", "to": "2026-01-31"},
    "status": "queued",
    "file_name": "collections-2026-01-01-2026-01-31.csv",
    "storage_key": f"{_AGENCY}/exports/2026/02/01/{_ID}.csv",
    "requested_by": _ADMIN,
    "created_at": "2026-02-01T09:00:00Z",
    "started_at": None,
    "finished_at": None,
    "rows": None,
    "failure_reason": None,
}
_SUCCEEDED = {
    **_QUEUED,
    "status": "succeeded",
    "started_at": "2026-02-01T09:00:01Z",
    "finished_at": "2026-02-01T09:00:02Z",
    "rows": 42,
    "download_url": f"https://exports.example/{_AGENCY}/exports/2026/02/01/{_ID}.csv?X-Amz-Signature=…",
    "download_expires_at": "2026-02-01T09:15:00Z",
}

NewExportBody = Annotated[
    NewExport,
    Body(
        examples=[
            Example(
                summary="January's collections",
                value={
                    "kind": "collections",
                    "parameters": {"from": "2026-01-01", "to": "2026-01-31"},
                },
            ),
            Example(
                summary="Aging as of a day",
                value={"kind": "aging", "parameters": {"as_of": "2026-02-15"}},
            ),
        ]
    ),
]

NightlyChoiceBody = Annotated[
    NightlyChoice,
    example("Collections and aging every night", {"kinds": ["collections", "aging"]}),
]
_NIGHTLY = ResponseSpec(
    data_container=NightlyExports,
    description="The agency's nightly exports.",
    examples=[
        Example(summary="Chosen", value={"kinds": ["collections", "aging"], "inherited": False})
    ],
)


class ExportController(Controller):
    path = "/v1/exports"
    tags = ["exports"]
    security = SECURED

    @post(
        "/",
        operation_id="requestExport",
        summary="Export a report as CSV",
        description=f"{RequestExport.__doc__}\n\nAnswers 202 with the queued export; "
        "`Location` names it.",
        status_code=HTTP_202_ACCEPTED,
        operation_class=Located,
        responses={
            **errors(400, 401, 403, 422),
            HTTP_202_ACCEPTED: ResponseSpec(
                data_container=Export,
                description="The export, queued for the workers.",
                examples=[Example(summary="Queued", value=_QUEUED)],
            ),
        },
    )
    async def request_export(
        self, data: NewExportBody, actor: FromDishka[Actor], use: FromDishka[RequestExport]
    ) -> Response[Export]:
        export = await use.execute(actor, data)
        return located(export, f"/v1/exports/{export.id}", status=HTTP_202_ACCEPTED)

    @get(
        "/",
        operation_id="listExports",
        summary="List exports",
        description=ListExports.__doc__,
        responses=errors(400, 401, 403, 422),
    )
    async def list_exports(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[ListExports],
        status: Annotated[ExportStatus | None, QueryParameter()] = None,
        kind: Annotated[ExportKind | None, QueryParameter()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Export]:
        return await use.execute(actor, status=status, kind=kind, cursor=cursor, limit=limit)

    @get(
        "/{export_id:uuid}",
        operation_id="getExport",
        summary="One export, with its download link once it has succeeded",
        description=GetExport.__doc__,
        responses={
            **errors(400, 401, 403, 404),
            HTTP_200_OK: ResponseSpec(
                data_container=ExportWithLink,
                description="The export; `download_url` downloads its CSV file until "
                "`download_expires_at` (`DEBTFLOW_EXPORT_LINK_SECONDS`).",
                examples=[Example(summary="Succeeded", value=_SUCCEEDED)],
            ),
        },
    )
    async def get_export(
        self, export_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetExport]
    ) -> ExportWithLink:
        return await use.execute(actor, export_id)

    @get(
        "/nightly",
        operation_id="getNightlyExports",
        summary="The reports exported every night",
        description=f"{GetNightlyExports.__doc__}\n\nEach night (00:30 UTC) every kind is "
        "exported for the day before (aging: as of that day); the exports are listed with the "
        "others, `requested_by` null.",
        responses={HTTP_200_OK: _NIGHTLY, **errors(401, 403)},
    )
    async def get_nightly(
        self, actor: FromDishka[Actor], use: FromDishka[GetNightlyExports]
    ) -> NightlyExports:
        return await use.execute(actor)

    @put(
        "/nightly",
        operation_id="chooseNightlyExports",
        summary="Choose the reports exported every night",
        description=ChooseNightlyExports.__doc__,
        responses={HTTP_200_OK: _NIGHTLY, **errors(400, 401, 403)},
    )
    async def choose_nightly(
        self,
        data: NightlyChoiceBody,
        actor: FromDishka[Actor],
        use: FromDishka[ChooseNightlyExports],
    ) -> NightlyExports:
        return await use.execute(actor, data)
