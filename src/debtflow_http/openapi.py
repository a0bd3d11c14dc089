"""OpenAPI helpers: the documented error responses of a route, closed request bodies, and
an answer that may also come as CSV."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import Body, BodyKwarg
from litestar.plugins import OpenAPISchemaPlugin

from debtflow_http.problems import PROBLEM_JSON, Problem

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

_WHEN = {
    400: "The request is malformed: a missing, unknown or mistyped input (see `errors`).",
    401: "No valid access token: missing, expired, tampered, revoked, or the user is inactive.",
    403: "The caller's role may not do this.",
    404: "No such object within the caller's reach; another agency's objects never are.",
    409: "The request conflicts with the current state: a duplicate or a forbidden transition.",
    413: "The request body is larger than this route accepts.",
    422: "The input breaks a business rule; `errors` names the field.",
    429: "Too many attempts; retry after the seconds in the Retry-After header.",
    503: "A service we depend on (the database, object storage, the payment gateway) is "
    "unavailable or busy; retry after the seconds in the Retry-After header, if any.",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """Problem+json response documentation for each of ``statuses``, and for the 503 of a
    database that cannot serve the request now, which any route that reads or writes may
    answer."""
    return {
        status: ResponseSpec(
            data_container=Problem, description=_WHEN[status], media_type=PROBLEM_JSON
        )
        for status in sorted({*statuses, 503})
    }


def example(summary: str, value: dict[str, Any]) -> BodyKwarg:
    """A JSON request body documented with one worked example: ``Annotated[T, example(…)]``."""
    return Body(examples=[Example(summary=summary, value=value)])


class ClosedStructs(OpenAPISchemaPlugin):
    """Document a Struct that forbids unknown fields as ``additionalProperties: false``.

    Litestar documents every Struct as an open object, yet the commands refuse unknown
    fields with a 400: without this, a client reading the document can't know. The schema
    itself is Litestar's own, from the next plugin that supports the type.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return (
            not field_definition.is_union
            and field_definition.is_subclass_of(msgspec.Struct)
            and field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        builtin = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        schema = builtin.to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


@dataclass
class AlsoCsv(Operation):
    """An operation whose 200 answer may also be a CSV file: ``operation_class=AlsoCsv``.

    Litestar documents one media type per response, the handler's JSON; the CSV the handler
    streams on request (``Accept: text/csv``) is added here, so clients can see it.
    """

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                **(ok.content or {}),
                "text/csv": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                ),
            }
