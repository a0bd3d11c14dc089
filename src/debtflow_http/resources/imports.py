"""Placement imports over the API: upload a CSV file, follow its run, read its row errors.

The controller is registered by :func:`imports_router`, a router per app, because the
upload's body limit is a setting (``DEBTFLOW_MAX_UPLOAD_BYTES``) while the shared ``API``
router is built once per process; its handlers therefore inject their dependencies
themselves (``@inject``) rather than through a DishkaRouter.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import msgspec
from dishka import FromDishka
from dishka.integrations.litestar import inject
from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from debtflow_adapters.settings import Settings
from debtflow_core.actor import Actor
from debtflow_core.domain.imports import ImportRowError, ImportRun, ImportStatus
from debtflow_core.errors import ValidationFailed
from debtflow_core.export_csv import safe_cell
from debtflow_core.pagination import MAX_LIMIT, Page
from debtflow_core.use_cases.imports import (
    GetImportRun,
    ListImportErrors,
    ListImportRuns,
    QueuePlacementUpload,
    UploadedFile,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import AlsoCsv, errors
from debtflow_http.resources.created import Located, located
from debtflow_http.resources.negotiation import preferred
from debtflow_http.resources.paging import Cursor, Limit

_CHUNK = 1024 * 1024
_CSV = "text/csv"
_JSON = "application/json"
_ERROR_COLUMNS = ("line", "column", "reason", "value")


@dataclass
class PlacementUpload:
    """The multipart form of an upload."""

    file: UploadFile
    """The placement CSV file (see docs/placement-format.md)."""
    delimiter: str = ","
    """The file's one-character field separator."""
    column_mapping: str | None = None
    """A JSON object from the file's header names to the format's column names, e.g.
    `{"Acct No": "account_id"}`."""


def _mapping(raw: str | None) -> dict[str, str]:
    if raw is None or not raw.strip():
        return {}
    try:
        return msgspec.json.decode(raw, type=dict[str, str])
    except msgspec.DecodeError:
        raise ValidationFailed(
            "the column mapping must be a JSON object of header names to column names",
            field="column_mapping",
        ) from None


async def _save(upload: UploadFile, path: Path) -> None:
    """Copy the upload to ``path`` a chunk at a time (it may be hundreds of megabytes)."""
    with path.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            await asyncio.to_thread(out.write, chunk)


Format = Annotated[
    str | None,
    QueryParameter(
        name="format", pattern="^(json|csv)$", description="`csv`: as `Accept: text/csv`."
    ),
]


def _csv_lines(rows: Iterable[Iterable[object]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    return text.getvalue().encode()


def _error_rows(page: Page[ImportRowError]) -> Iterator[tuple[object, ...]]:
    # A value is what the creditor's file held: defused, as in exports, before a
    # spreadsheet opens it.
    return ((e.line, safe_cell(e.column), e.reason, safe_cell(e.value)) for e in page.items)


class ImportController(Controller):
    path = "/v1/imports"
    tags = ["imports"]
    security = SECURED

    @get(
        "/",
        operation_id="listImportRuns",
        summary="List import runs",
        description=ListImportRuns.__doc__,
        responses=errors(400, 401, 403, 422),
    )
    @inject
    async def list_runs(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[ListImportRuns],
        status: Annotated[ImportStatus | None, QueryParameter()] = None,
        source: Annotated[UUID | None, QueryParameter(description="One file source's runs")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ImportRun]:
        return await use.execute(
            actor, status=status, file_source_id=source, cursor=cursor, limit=limit
        )

    @get(
        "/{run_id:uuid}",
        operation_id="getImportRun",
        summary="One import run",
        description=GetImportRun.__doc__,
        responses=errors(400, 401, 403, 404),
    )
    @inject
    async def get_run(
        self, run_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetImportRun]
    ) -> ImportRun:
        return await use.execute(actor, run_id)

    @get(
        "/{run_id:uuid}/errors",
        operation_id="listImportErrors",
        summary="A run's row errors",
        description=f"{ListImportErrors.__doc__}\n\nWith `Accept: text/csv` or `format=csv`, "
        "every error at once as a streamed CSV download (`line,column,reason,value`, the "
        "values redacted as stored) instead of a JSON page.",
        responses={
            **errors(400, 401, 403, 404, 422),
            HTTP_200_OK: ResponseSpec(
                data_container=Page[ImportRowError],
                description="A page of errors, or (as CSV) all of them.",
            ),
        },
        operation_class=AlsoCsv,
    )
    @inject
    async def list_errors(
        self,
        request: Request[Any, Any, Any],
        run_id: FromPath[UUID],
        actor: FromDishka[Actor],
        use: FromDishka[ListImportErrors],
        format_: Format = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ImportRowError] | Stream:
        wants_csv = format_ == "csv" or (
            format_ is None and preferred(request, [_JSON, _CSV], default=_JSON) == _CSV
        )
        if not wants_csv:
            return await use.execute(actor, run_id, cursor=cursor, limit=limit)
        # The first page is read here, so a run out of reach is a 404 before streaming.
        first = await use.execute(actor, run_id, limit=MAX_LIMIT)

        async def lines() -> AsyncIterator[bytes]:
            page = first
            yield _csv_lines([_ERROR_COLUMNS])
            while True:
                yield _csv_lines(_error_rows(page))
                if page.next_cursor is None:
                    return
                page = await use.execute(actor, run_id, cursor=page.next_cursor, limit=MAX_LIMIT)

        # A header, as the handler's JSON media type would win over the Stream's own.
        return Stream(
            lines(),
            headers={
                "Content-Type": f"{_CSV}; charset=utf-8",
                "Content-Disposition": f'attachment; filename="import-{run_id}-errors.csv"',
            },
        )

    @post(
        "/",
        operation_id="uploadPlacementFile",
        summary="Upload a placement file",
        description=f"{QueuePlacementUpload.__doc__}\n\nAnswers 202 with the queued run "
        "(`Location` names it), or 200 with the earlier run when the content had one. The "
        "body is `multipart/form-data`; beyond `DEBTFLOW_MAX_UPLOAD_BYTES` it is a 413.",
        status_code=HTTP_202_ACCEPTED,
        operation_class=Located,
        responses={
            **errors(400, 401, 403, 413, 422, 503),
            HTTP_200_OK: ResponseSpec(
                data_container=ImportRun,
                description="The same content was uploaded before: its run, nothing queued.",
            ),
        },
    )
    @inject
    async def upload(
        self,
        data: Annotated[
            PlacementUpload,
            Body(
                media_type=RequestEncodingType.MULTI_PART,
                examples=[
                    Example(
                        summary="A creditor's semicolon-separated file with its own headers",
                        value={
                            "file": "(the bytes of placement.csv)",
                            "delimiter": ";",
                            "column_mapping": '{"Acct No": "account_id"}',
                        },
                    )
                ],
            ),
        ],
        actor: FromDishka[Actor],
        use: FromDishka[QueuePlacementUpload],
    ) -> Response[ImportRun]:
        if not isinstance(data.file, UploadFile):  # a part without a filename is text
            raise ValidationFailed("send the placement file as a file part", field="file")
        mapping = _mapping(data.column_mapping)
        try:
            with tempfile.TemporaryDirectory(prefix="debtflow-upload-") as directory:
                path = Path(directory) / "upload.csv"
                await _save(data.file, path)
                queued = await use.execute(
                    actor,
                    UploadedFile(
                        path=path,
                        file_name=data.file.filename or "upload.csv",
                        delimiter=data.delimiter,
                        column_mapping=mapping,
                    ),
                )
        finally:
            await data.file.close()
        return located(
            queued.run,
            f"/v1/imports/{queued.run.id}",
            status=HTTP_200_OK if queued.duplicate else HTTP_202_ACCEPTED,
        )


def imports_router(settings: Settings) -> Router:
    """The imports routes, the upload accepting bodies up to ``settings.max_upload_bytes``."""
    return Router(
        "",
        route_handlers=[ImportController],
        request_max_body_size=settings.max_upload_bytes,
    )
