"""A POST's answer with the ``Location`` of what it made: where to read it from now on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from litestar import Response
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.status_codes import HTTP_201_CREATED

from debtflow_http.problems import PROBLEM_JSON

T = TypeVar("T")

_LOCATION = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    description="The path of what the request made: read it there from now on.",
    required=True,
)


def located(
    body: T, location: str, *, status: int = HTTP_201_CREATED, headers: dict[str, str] | None = None
) -> Response[T]:
    """``body`` with ``status`` and a ``Location`` header of ``location``."""
    return Response(body, status_code=status, headers={"Location": location, **(headers or {})})


@dataclass
class Located(Operation):
    """An operation whose handler answers through :func:`located`: ``operation_class=Located``.

    Each of its answers but a problem carries ``Location``, whatever the status, and is
    documented so here. Litestar documents a route's ``response_headers`` on its own status
    only, and not even there once a ``ResponseSpec`` describes that status, as it does to
    give an example; a ``ResponseSpec`` has no headers.
    """

    def __post_init__(self) -> None:
        document_on_answers(self, "Location", _LOCATION)


def document_on_answers(operation: Operation, name: str, header: OpenAPIHeader) -> None:
    """Document ``header`` as ``name`` on each of ``operation``'s answers but a problem."""
    for response in (operation.responses or {}).values():
        if isinstance(response, OpenAPIResponse) and PROBLEM_JSON not in (response.content or {}):
            response.headers = {**(response.headers or {}), name: header}
