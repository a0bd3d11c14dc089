"""OpenAPI helpers: the documented error responses of a route."""

from __future__ import annotations

from litestar.openapi import ResponseSpec

from debtflow_http.problems import PROBLEM_JSON, Problem

_WHEN = {
    400: "The request is malformed: a missing, unknown or mistyped input (see `errors`).",
    401: "No valid access token: missing, expired, tampered, revoked, or the user is inactive.",
    403: "The caller's role may not do this.",
    404: "No such object within the caller's reach; another agency's objects never are.",
    409: "The request conflicts with the current state: a duplicate or a forbidden transition.",
    422: "The input breaks a business rule; `errors` names the field.",
    429: "Too many attempts; retry after the seconds in the Retry-After header.",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """Problem+json response documentation for each of ``statuses``."""
    return {
        status: ResponseSpec(
            data_container=Problem, description=_WHEN[status], media_type=PROBLEM_JSON
        )
        for status in statuses
    }
