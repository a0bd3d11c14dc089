"""The query parameters every paginated list takes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from debtflow_core.pagination import MAX_LIMIT

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Items per page")]
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=512,
        description="`next_cursor` of the previous page; omit it for the first page",
    ),
]
