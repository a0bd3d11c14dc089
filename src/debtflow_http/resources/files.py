"""``GET /v1/files/{key}``: the download links the API signs for objects on local (or
in-memory) storage. No access token: the link's signature is the credential."""

from __future__ import annotations

import asyncio
import mimetypes
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from dishka import FromDishka
from litestar import Controller, get
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND

from debtflow_adapters.local.downloads import SignedDownloads
from debtflow_adapters.local.signed_links import content_disposition
from debtflow_http.openapi import errors
from debtflow_http.problems import PROBLEM_JSON, Problem

_CHUNK = 256 * 1024


async def _chunks(directory: str, path: Path) -> AsyncIterator[bytes]:
    """The file's bytes, then the temporary directory that holds it is removed."""
    try:
        with path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, _CHUNK):
                yield chunk
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class FileController(Controller):
    path = "/v1/files"
    tags = ["files"]

    @get(
        "/{key:path}",
        operation_id="downloadFile",
        summary="Download a file by a signed link",
        description="Serves a download link the API signed (an export, a backed-up file on "
        "local storage), as an attachment named by the link. The link is the credential: "
        "no access token. A link changed in any part, or past its expiry, is a 403; a file "
        "no longer there, a 404.",
        media_type="application/octet-stream",
        responses={
            **errors(400),
            HTTP_403_FORBIDDEN: ResponseSpec(
                data_container=Problem,
                media_type=PROBLEM_JSON,
                description="The link is not as signed, or has expired.",
            ),
            HTTP_404_NOT_FOUND: ResponseSpec(
                data_container=Problem,
                media_type=PROBLEM_JSON,
                description="The file the link names is no longer there.",
            ),
        },
    )
    async def download(
        self,
        key: FromPath[str],
        downloads: FromDishka[SignedDownloads],
        name: Annotated[str, QueryParameter(description="The file's name")] = "",
        expires: Annotated[int, QueryParameter(description="Unix time of expiry")] = 0,
        signature: Annotated[str, QueryParameter(description="The link's signature")] = "",
    ) -> Stream:
        directory = tempfile.mkdtemp(prefix="debtflow-download-")
        path = Path(directory) / "object"
        try:
            await downloads.fetch(
                key.lstrip("/"),
                file_name=name,
                expires=expires,
                signature=signature,
                destination=path,
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        # A header, as the handler's media type would win over the Stream's own.
        return Stream(
            _chunks(directory, path),
            headers={
                "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "Content-Disposition": content_disposition(name or "download"),
            },
        )
