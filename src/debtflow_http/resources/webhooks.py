"""The payment gateway's webhooks: ``POST /v1/webhooks/stripe``.

No access token: Stripe signs each delivery instead (``Stripe-Signature``, checked over the
raw body, which is why the body is read as bytes and never decoded here). The answer is
quick: the event is stored and handed to the workers, which apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from dishka import FromDishka
from litestar import Controller, Request, Response, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import HeaderParameter, RawBody
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_404_NOT_FOUND

from debtflow_core.errors import ValidationFailed
from debtflow_core.use_cases.webhooks import ReceiveGatewayEvent
from debtflow_http.problems import PROBLEM_JSON, FieldError, Problem, problem_response


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    received: bool = True
    new: bool
    """A new event DebtFlow acts on, handed to the workers; ``false`` for a redelivery
    (nothing is done twice) and for an event of a type DebtFlow ignores."""


_EVENT = {
    "id": "evt_3PqR7sLkdIwHu7ix0w4f8xYz",
    "object": "event",
    "type": "payment_intent.succeeded",
    "created": 1772442000,
    "data": {
        "object": {
            "id": "pi_3PqR7sLkdIwHu7ix0aBcDeFg",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 25000,
            "currency": "usd",
            "metadata": {"debtflow_payment_id": "0b8f6f3e-5d1c-4c2a-9e7b-2f4d6a8c1e35"},
        }
    },
}


@dataclass
class _WithStripeEvent(Operation):
    """The operation, documenting the body the handler reads raw (as ``body: RawBody``,
    which Litestar leaves out of the document): Stripe signs the exact bytes it sent, so
    they must not be decoded before the check."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="Stripe's event, exactly as Stripe sent it.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.OBJECT, required=["id", "type", "data"]),
                    examples={"succeeded": Example(summary="A payment succeeded", value=_EVENT)},
                )
            },
        )


StripeSignature = Annotated[
    str | None,
    HeaderParameter(
        name="Stripe-Signature",
        required=False,
        description='`t=<unix time>,v1=<HMAC-SHA256 of "t.body" with the endpoint\'s secret>`; '
        "refused when missing, not matching, or more than 300 s from our clock.",
    ),
]


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]

    @post(
        "/stripe",
        operation_id="receiveStripeWebhook",
        summary="Receive a Stripe webhook",
        description=f"{ReceiveGatewayEvent.__doc__}\n\nThe events acted on: "
        "`payment_intent.succeeded`, `payment_intent.payment_failed`, `charge.refunded`, "
        "`refund.failed`; "
        "others are acknowledged and ignored. Not found (404) while no webhook secret is "
        "configured (`DEBTFLOW_STRIPE_WEBHOOK_SECRET`).",
        status_code=HTTP_200_OK,
        operation_class=_WithStripeEvent,
        responses={
            HTTP_400_BAD_REQUEST: ResponseSpec(
                data_container=Problem,
                media_type=PROBLEM_JSON,
                description="Forged, stale or malformed: the signature is missing or does "
                "not match, its timestamp is too far from our clock, or the body is not a "
                "Stripe event. Nothing was stored.",
            ),
            HTTP_404_NOT_FOUND: ResponseSpec(
                data_container=Problem,
                media_type=PROBLEM_JSON,
                description="Webhooks are not enabled on this installation.",
            ),
        },
    )
    async def receive_stripe(
        self,
        request: Request[Any, Any, Any],
        body: RawBody,
        signature: StripeSignature,
        use: FromDishka[ReceiveGatewayEvent],
    ) -> Response[Receipt] | Response[Problem]:
        try:
            new = await use.execute(body, signature)
        except ValidationFailed as error:
            # A delivery we cannot trust or read is a bad request, not a broken business rule.
            errors = [FieldError(error.field, error.detail)] if error.field else None
            return problem_response(
                request, 400, "bad-request", "The request is malformed", error.detail, errors=errors
            )
        return Response(Receipt(new=new))
