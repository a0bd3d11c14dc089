"""Every error as RFC 9457 ``application/problem+json``: type, title, status, detail.

Domain errors map to their status here and nowhere else. Validation failures carry
``errors``: one ``{"field", "message"}`` per offending input. Nothing internal — no stack
trace, no SQL, no exception text of a library — ever reaches a client: an unexpected
exception is logged with the request id and answered with a bare 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from debtflow_core.errors import (
    Conflict,
    DomainError,
    GatewayUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
    StorageUnavailable,
    Unauthenticated,
    ValidationFailed,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:debtflow:problem:"

log = logging.getLogger("debtflow.http")


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


_DOMAIN: dict[type[DomainError], tuple[int, str, str]] = {
    ValidationFailed: (422, "validation-failed", "The request breaks a rule"),
    NotFound: (404, "not-found", "Not found"),
    PermissionDenied: (403, "forbidden", "Not allowed"),
    Conflict: (409, "conflict", "Conflict with the current state"),
    Unauthenticated: (401, "unauthenticated", "Authentication is required"),
    RateLimited: (429, "rate-limited", "Too many requests"),
    GatewayUnavailable: (503, "unavailable", "A service we depend on is unavailable"),
    StorageUnavailable: (503, "unavailable", "A service we depend on is unavailable"),
}

_HTTP_TITLES = {
    400: ("bad-request", "The request is malformed"),
    401: ("unauthenticated", "Authentication is required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("too-large", "The request body is too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = Problem(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Problem]:
    kind = next(k for k in type(error).__mro__ if k in _DOMAIN)
    status, slug, title = _DOMAIN[kind]
    headers: dict[str, str] = {}
    errors = None
    if isinstance(error, ValidationFailed) and error.field:
        errors = [FieldError(error.field, error.detail)]
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="debtflow"'
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return problem_response(
        request, status, slug, title, error.detail, errors=errors, headers=headers
    )


_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED_FIELD = re.compile(r"field `([^`]+)`")


def _field_error(item: dict[str, Any]) -> FieldError:
    """Name the input a Litestar/msgspec validation message is about.

    msgspec puts the path of a bad body value after " - at `$.a.b`", and names missing or
    unknown fields in backticks; query and path parameters come with their ``key``.
    """
    message = str(item.get("message", "is not valid"))
    path = _PATH.search(message)
    named = _NAMED_FIELD.search(message)
    field = (path and path.group(1)) or (named and named.group(1)) or item.get("key") or "body"
    return FieldError(str(field), _PATH.sub("", message))


def _validation_error(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[Problem]:
    extra = error.extra if isinstance(error.extra, list) else []
    errors = [_field_error(item) for item in extra if isinstance(item, dict)]
    return problem_response(
        request,
        400,
        "bad-request",
        "The request is malformed",
        "Some inputs are missing, of the wrong type or not allowed.",
        errors=errors or None,
    )


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Problem]:
    if error.status_code >= 500:
        return _unexpected(request, error)
    slug, title = _HTTP_TITLES.get(error.status_code, ("client-error", "The request failed"))
    detail = error.detail
    handler = request.scope.get("route_handler")
    if error.status_code == 413 and handler is not None:
        limit = handler.resolve_request_max_body_size()
        detail = f"this route accepts request bodies of up to {limit} bytes"
    return problem_response(request, error.status_code, slug, title, detail, headers=error.headers)


def _unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Problem]:
    log.exception("unhandled error", exc_info=error)
    return problem_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal",
        "Internal server error",
        "Something went wrong on our side. Quote the X-Request-ID header when reporting it.",
    )


def _undecodable(request: Request[Any, Any, Any], error: UnicodeDecodeError) -> Response[Problem]:
    # Litestar decodes a multipart part without a filename as UTF-8, and raises if it is not.
    return problem_response(
        request, 400, "bad-request", "The request is malformed", "a form field is not UTF-8 text"
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    UnicodeDecodeError: _undecodable,
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
