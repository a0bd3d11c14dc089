"""Which of a route's media types a request asks for, by its ``Accept`` header."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

_WEIGHT = re.compile(r";\s*q=([^;,]*)", re.IGNORECASE)
_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")  # RFC 9110, 12.4.2


def preferred(request: Request[Any, Any, Any], offered: list[str], default: str) -> str:
    """The type of ``offered`` the request's ``Accept`` header prefers; ``default`` when it
    names none of them, or when one of its qualities is not a number from 0 to 1 as RFC 9110
    writes them.

    Such a header states no preference we can read. Litestar would take a quality it cannot
    read for 1, and raises ``OverflowError`` on one too large for an integer (``q=inf``,
    ``q=1e999``).
    """
    accept = request.headers.get("Accept", "")
    if any(not _QVALUE.fullmatch(q.strip()) for q in _WEIGHT.findall(accept)):
        return default
    return request.accept.best_match(offered, default=default)
