"""A POST's answer with the ``Location`` of what it made: where to read it from now on."""

from __future__ import annotations

from typing import TypeVar

from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.status_codes import HTTP_201_CREATED

T = TypeVar("T")

LOCATION = ResponseHeader(
    name="Location",
    description="The path of what the request made: read it there from now on.",
    documentation_only=True,
)
"""For the route's ``response_headers``, so that the OpenAPI document shows the header."""


def located(
    body: T, location: str, *, status: int = HTTP_201_CREATED, headers: dict[str, str] | None = None
) -> Response[T]:
    """``body`` with ``status`` and a ``Location`` header of ``location``."""
    return Response(body, status_code=status, headers={"Location": location, **(headers or {})})
