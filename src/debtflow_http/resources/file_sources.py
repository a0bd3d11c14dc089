"""``/v1/file-sources``: where an agency's placement files are fetched from (admins only)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from dishka import FromDishka
from litestar import Controller, Response, get, patch, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from debtflow_core.actor import Actor
from debtflow_core.domain.imports import FileSource
from debtflow_core.use_cases.file_sources import (
    CreateFileSource,
    DeactivateFileSource,
    FileSourceChanges,
    GetFileSource,
    ListFileSources,
    NewFileSource,
    PollFileSource,
    PollRequested,
    UpdateFileSource,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.resources.created import Located, located

NewFileSourceBody = Annotated[
    NewFileSource,
    example(
        "A creditor's SFTP drop, key auth, polled every 15 minutes",
        {
            "name": "First Bank drop",
            "kind": "sftp",
            "host": "sftp.firstbank.example",
            "port": 22,
            "username": "acme-collections",
            "secret_env": "DEBTFLOW_SOURCE_SECRET_ACME__FIRSTBANK",
            "host_key": "ssh-ed25519 "
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "directory": "/outbox",
            "pattern": "placements-*.csv",
            "archive_directory": "/outbox/imported",
            "delimiter": ",",
            "column_mapping": {"Acct Number": "account_id", "Balance": "placed_balance"},
            "schedule": "*/15 * * * *",
        },
    ),
]

FileSourceChangesBody = Annotated[
    FileSourceChanges,
    example("Poll hourly, on the hour", {"schedule": "0 * * * *"}),
]


class FileSourceList(msgspec.Struct, frozen=True):
    items: list[FileSource]


class FileSourceController(Controller):
    """A source holds no secret: ``secret_env`` is the NAME of the worker's environment
    variable that holds the password or private key, so nothing secret is ever returned."""

    path = "/v1/file-sources"
    tags = ["file sources"]
    security = SECURED

    @get(
        "/",
        operation_id="listFileSources",
        summary="List the agency's file sources",
        description=ListFileSources.__doc__,
        responses=errors(401, 403),
    )
    async def list_sources(
        self, actor: FromDishka[Actor], use: FromDishka[ListFileSources]
    ) -> FileSourceList:
        return FileSourceList(await use.execute(actor))

    @post(
        "/",
        operation_id="createFileSource",
        summary="Add a file source",
        description=CreateFileSource.__doc__,
        responses=errors(400, 401, 403, 409, 422),
        operation_class=Located,
    )
    async def create_source(
        self, data: NewFileSourceBody, actor: FromDishka[Actor], use: FromDishka[CreateFileSource]
    ) -> Response[FileSource]:
        source = await use.execute(actor, data)
        return located(source, f"/v1/file-sources/{source.id}")

    @get(
        "/{source_id:uuid}",
        operation_id="getFileSource",
        summary="One file source",
        description=GetFileSource.__doc__,
        responses=errors(400, 401, 403, 404),
    )
    async def get_source(
        self, source_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetFileSource]
    ) -> FileSource:
        return await use.execute(actor, source_id)

    @patch(
        "/{source_id:uuid}",
        operation_id="updateFileSource",
        summary="Change a file source",
        description=UpdateFileSource.__doc__,
        responses=errors(400, 401, 403, 404, 409, 422),
    )
    async def update_source(
        self,
        source_id: FromPath[UUID],
        data: FileSourceChangesBody,
        actor: FromDishka[Actor],
        use: FromDishka[UpdateFileSource],
    ) -> FileSource:
        return await use.execute(actor, source_id, data)

    @post(
        "/{source_id:uuid}/deactivate",
        status_code=HTTP_200_OK,
        operation_id="deactivateFileSource",
        summary="Stop polling a file source",
        description=DeactivateFileSource.__doc__,
        responses=errors(400, 401, 403, 404, 422),
    )
    async def deactivate_source(
        self,
        source_id: FromPath[UUID],
        actor: FromDishka[Actor],
        use: FromDishka[DeactivateFileSource],
    ) -> FileSource:
        return await use.execute(actor, source_id)

    @post(
        "/{source_id:uuid}/poll",
        status_code=HTTP_202_ACCEPTED,
        operation_id="pollFileSource",
        summary="Fetch a source's files now",
        description=PollFileSource.__doc__,
        responses={
            **errors(400, 401, 403, 404, 409),
            HTTP_202_ACCEPTED: ResponseSpec(
                data_container=PollRequested,
                description="The poll is queued; its files become import runs (GET /v1/imports).",
            ),
        },
    )
    async def poll_source(
        self, source_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[PollFileSource]
    ) -> Response[PollRequested]:
        return Response(await use.execute(actor, source_id), status_code=HTTP_202_ACCEPTED)
