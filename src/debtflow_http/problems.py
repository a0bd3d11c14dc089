"""Every error as RFC 9457 ``application/problem+json``: type, title, status, detail.

Domain errors map to their status here and nowhere else. Validation failures carry
``errors``: one ``{"field", "message"}`` per offending input. Nothing internal — no stack
trace, no SQL, no exception text of a library — ever reaches a client: an unexpected
exception is logged with the request id and answered with a bare 500.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.serialization import decode_json
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from debtflow_adapters.persistence.database import DATABASE_ERRORS, is_transient
from debtflow_core.errors import (
    Conflict,
    Deferred,
    DomainError,
    GatewayRefused,
    GatewayUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
    SourceFileChanged,
    SourceUnavailable,
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
    GatewayRefused: (409, "gateway-refused", "The payment gateway refused the request"),
    GatewayUnavailable: (503, "unavailable", "A service we depend on is unavailable"),
    StorageUnavailable: (503, "unavailable", "A service we depend on is unavailable"),
    SourceUnavailable: (503, "unavailable", "A service we depend on is unavailable"),
    SourceFileChanged: (503, "unavailable", "A service we depend on is unavailable"),
    Deferred: (503, "unavailable", "Not yet: try again later"),
}
"""Every domain error's answer; a subclass takes the first of its classes found here."""

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


_NAMED_FIELD = re.compile(r"field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"^Missing required \w+ parameter '([^']+)'")
_NO_BODY = "'data'"  # Litestar's message when a JSON body is expected and there is none


def _field_error(request: Request[Any, Any, Any], item: dict[str, Any]) -> FieldError:
    """Name the input a Litestar/msgspec validation message is about, as the client wrote it.

    For the body, Litestar's ``key`` is the path to the object in question (``data``: the
    body itself), and msgspec names a missing or unknown field of it in backticks. For a
    query, header or path parameter, ``key`` is the handler's argument, and the route
    declares the parameter's public name.
    """
    message = str(item.get("message", "is not valid"))
    key = str(item.get("key") or "")
    if item.get("source") != "body":
        return FieldError(_public_name(request, key), message)
    if message == _NO_BODY:
        return FieldError("body", "a JSON body is required")
    within = "" if key == "data" else key
    named = _NAMED_FIELD.search(message)
    if named is None:
        return FieldError(within or "body", message)
    return FieldError(f"{within}.{named.group(1)}" if within else named.group(1), message)


def _public_name(request: Request[Any, Any, Any], argument: str) -> str:
    handler = request.scope.get("route_handler")
    definition = handler.parsed_fn_signature.parameters.get(argument) if handler else None
    declared = getattr(definition, "kwarg_definition", None)
    return getattr(declared, "name", None) or argument


def _validation_error(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[Problem]:
    extra = error.extra if isinstance(error.extra, list) else []
    errors = [_field_error(request, item) for item in extra if isinstance(item, dict)]
    missing = _MISSING_PARAMETER.match(str(error.detail))
    if not errors and missing:
        errors = [FieldError(missing.group(1), "is required")]
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
    if error.status_code == 400:
        return _unreadable(request, error)
    slug, title = _HTTP_TITLES.get(error.status_code, ("client-error", "The request failed"))
    detail = error.detail
    handler = request.scope.get("route_handler")
    if error.status_code == 413 and handler is not None:
        limit = handler.resolve_request_max_body_size()
        detail = f"this route accepts request bodies of up to {limit} bytes"
    return problem_response(request, error.status_code, slug, title, detail, headers=error.headers)


_NOT_JSON = "the body cannot be read as JSON"
_AT_BYTE = re.compile(r"\(byte (\d+)\)$")  # where msgspec stopped: "… (byte 5)"


def _unreadable(request: Request[Any, Any, Any], error: HTTPException) -> Response[Problem]:
    """A request Litestar could not read (one that breaks the handler's types is a
    ValidationException): a body that is not JSON, a multipart form that does not parse.
    Litestar's detail is msgspec's or its own text, so the answer is worded here; of a JSON
    body, it says where the decoder stopped."""
    if isinstance(error.__cause__, SerializationException):
        return _not_json(request, _json_fault(str(error.__cause__)))
    if request.content_type[0] == "multipart/form-data":
        detail = "the body cannot be read as a multipart/form-data form"
    else:
        detail = "the request cannot be read"
    return problem_response(request, 400, "bad-request", "The request is malformed", detail)


def _json_fault(message: str) -> str:
    if message == "Input data was truncated":
        return "ends before its JSON value does"
    at = _AT_BYTE.search(message)
    return f"is not valid JSON near byte {at.group(1)}" if at else "cannot be read"


def _not_json(request: Request[Any, Any, Any], reason: str) -> Response[Problem]:
    return problem_response(
        request,
        400,
        "bad-request",
        "The request is malformed",
        _NOT_JSON,
        errors=[FieldError("body", reason)],
    )


def _unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Problem]:
    log.exception("unhandled error", exc_info=error)
    return problem_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal",
        "Internal server error",
        "Something went wrong on our side. Quote the X-Request-ID header when reporting it.",
    )


def _database_error(request: Request[Any, Any, Any], error: Exception) -> Response[Problem]:
    """A database that is unreachable or busy, or a transaction it gave up (a deadlock, a
    lock that timed out), is a 503 the client may retry: the transaction was rolled back
    (what the request committed before it, as a payment's first phase, stays, and its
    idempotency key replays it). Any other database error is ours."""
    if not is_transient(error):
        return _unexpected(request, error)
    log.warning(
        "the database could not serve a request",
        extra={"error": _cause(error), "sqlstate": _sqlstate(error)},
        exc_info=error,
    )
    return problem_response(
        request,
        503,
        "unavailable",
        "A service we depend on is unavailable",
        "the database is busy or unreachable; try again shortly",
        headers={"Retry-After": "1"},
    )


def _cause(error: BaseException) -> str:
    """The driver's error class (SQLAlchemy's wraps it)."""
    return type(getattr(error, "orig", None) or error).__name__


def _sqlstate(error: BaseException) -> str | None:
    return getattr(getattr(error, "orig", None) or error, "sqlstate", None)


def _undecodable(request: Request[Any, Any, Any], error: UnicodeDecodeError) -> Response[Problem]:
    # Litestar decodes a multipart part without a filename as UTF-8, and raises if it is not;
    # msgspec raises it (not a DecodeError) for a JSON string that is not UTF-8.
    if request.content_type[0] == "multipart/form-data":
        return problem_response(
            request,
            400,
            "bad-request",
            "The request is malformed",
            "a form field is not UTF-8 text",
        )
    return _not_json(request, "is not UTF-8 text")


def _too_deep(request: Request[Any, Any, Any], error: RecursionError) -> Response[Problem]:
    """A body nested deeper than the decoder recurses is the client's; any other
    RecursionError is ours."""
    frames = traceback.walk_tb(error.__traceback__)
    if not any(frame.f_code is decode_json.__code__ for frame, _ in frames):
        return _unexpected(request, error)
    return problem_response(
        request, 400, "bad-request", "The request is malformed", "the JSON is nested too deeply"
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    UnicodeDecodeError: _undecodable,
    RecursionError: _too_deep,
    DomainError: _domain_error,
    **dict.fromkeys(DATABASE_ERRORS, _database_error),
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
