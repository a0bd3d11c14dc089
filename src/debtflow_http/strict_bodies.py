"""JSON bodies decoded strictly.

Litestar converts a decoded body to the handler's type leniently (msgspec's ``strict=False``,
meant for query strings and forms, where every value is text): it takes ``"1000"`` for
``1000``, ``"true"`` for ``True`` and ``"null"`` for ``None``. An API whose schema says
integer must refuse a string, as it refuses any other wrong type. Run before the handler,
:func:`decode_strictly` decodes the body against the handler's type with msgspec's default,
strict rules. Where only leniency would have let the body through, it refuses it with the
same 400 and the same field names as Litestar's own validation; any other fault is left to
Litestar, which reports it with those of the headers and the query.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import BodyKwarg

# Where msgspec says the wrong value is: "… - at `$.address.zip`".
_AT = re.compile(r" - at `\$\.?(.*)`$")

_Decoders = tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]


@functools.lru_cache(maxsize=1024)  # bounded: every app a test builds has handlers of its own
def _decoders_of(handler: BaseRouteHandler) -> _Decoders | None:
    """The strict and the lenient decoder of the handler's JSON body; ``None`` if it
    takes none."""
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    body = data.kwarg_definition
    if isinstance(body, BodyKwarg) and body.media_type != RequestEncodingType.JSON:
        return None
    return msgspec.json.Decoder(data.annotation), msgspec.json.Decoder(
        data.annotation, strict=False
    )


async def decode_strictly(request: Request[Any, Any, Any]) -> None:
    """Refuse a JSON body that only a lenient decoding takes for the handler's type."""
    decoders = _decoders_of(request.route_handler)
    if decoders is None:
        return
    strict, lenient = decoders
    raw = await request.body()
    try:
        strict.decode(raw)
    except msgspec.DecodeError as error:  # a ValidationError too
        try:
            lenient.decode(raw)
        except msgspec.DecodeError:
            return  # at fault whatever the rules: Litestar says so, and what else is
        message, _, _ = str(error).partition(" - at ")
        at = _AT.search(str(error))
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}"
            + (f"?{request.url.query}" if request.url.query else ""),
            extra=[{"message": message, "key": (at and at.group(1)) or "data", "source": "body"}],
        ) from None
