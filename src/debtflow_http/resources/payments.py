from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import msgspec
from dishka import FromDishka
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_202_ACCEPTED,
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from debtflow_core.actor import Actor
from debtflow_core.domain.card_numbers import looks_like_card_number, strings_in
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.domain.payment_processor import PaymentProcessor
from debtflow_core.errors import ValidationFailed
from debtflow_core.pagination import Page
from debtflow_core.use_cases.payment_processors import (
    AddPaymentProcessor,
    ListPaymentProcessors,
    NewPaymentProcessor,
)
from debtflow_core.use_cases.payments import (
    GetPayment,
    ListPayments,
    MakePayment,
    NewPayment,
    NewRefund,
    PaymentOutcome,
    RefundPayment,
)
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors, example
from debtflow_http.problems import PROBLEM_JSON, Problem
from debtflow_http.resources.created import Located, document_on_answers, located
from debtflow_http.resources.paging import Cursor, Limit
from debtflow_http.strict_bodies import decode_strictly

IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Unique per payment attempt; a retry with the same key and body replays "
        "the first answer instead of charging again. Kept 24 hours.",
    ),
]

_STATUS = {
    PaymentOutcome.COMPLETED: HTTP_201_CREATED,
    PaymentOutcome.PENDING: HTTP_202_ACCEPTED,
    PaymentOutcome.DECLINED: HTTP_402_PAYMENT_REQUIRED,
}


NewPaymentBody = Annotated[
    NewPayment,
    example(
        "Pay part of a balance",
        {
            "account_id": "3f2b9c1e-8d4a-4f6b-9a2e-5c7d1e0b4a11",
            "amount": 25000,
            "currency": "USD",
            "processor_id": "5b6c7d8e-9f01-4a23-8b45-6c7d8e9f0a1b",
            "payment_method": "pm_card_visa",
        },
    ),
]

NewRefundBody = Annotated[
    NewRefund,
    example(
        "Refund part of a payment",
        {"amount": 5000},
    ),
]

NewPaymentProcessorBody = Annotated[
    NewPaymentProcessor,
    example(
        "The sandbox",
        {"name": "Sandbox", "kind": "sandbox"},
    ),
]


class Refunded(msgspec.Struct, frozen=True, kw_only=True):
    refund: Refund
    payment: Payment
    """The payment after the refund."""


async def refuse_card_numbers(request: Request[Any, Any, Any]) -> None:
    """Before anything decodes the body: a card number anywhere in it (a field, a key, a
    typo) is refused, so it is never stored, logged or echoed in an error. Then the app's
    own hook, which this one replaces on its routes: :func:`decode_strictly`. (The
    Idempotency-Key is checked by the use cases, which store it.)"""
    raw = await request.body()
    texts: Iterable[str]
    if b"\\" in raw:
        # An escape may hide a digit from the raw text: search the decoded strings.
        try:
            texts = strings_in(msgspec.json.decode(raw))
        except msgspec.DecodeError:
            return  # malformed JSON: the normal decoding reports it
    else:
        # Without escapes every string and number of the body is in its text as it is, and
        # a card number cannot span two of them: one search of the text does, at a tenth
        # of the cost of decoding the body to search each string.
        texts = (raw.decode(errors="replace"),)
    if any(looks_like_card_number(text) for text in texts):
        # No field named: the number may be anywhere, even a field's name.
        raise ValidationFailed(
            "the request contains what looks like a card number; send the gateway's "
            "payment-method reference (pm_…) instead"
        )
    await decode_strictly(request)


_REPLAYED = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
    description="`true` when the answer replays the one stored under the `Idempotency-Key` "
    "(as it now stands); absent on the first answer.",
)


@dataclass
class _Replayable(Operation):
    """An operation under an ``Idempotency-Key``: its answers may be replays."""

    def __post_init__(self) -> None:
        document_on_answers(self, "Idempotent-Replayed", _REPLAYED)


@dataclass
class _ReplayableLocated(Located):
    """A :class:`Located` operation whose answers may be replays."""

    def __post_init__(self) -> None:
        super().__post_init__()
        document_on_answers(self, "Idempotent-Replayed", _REPLAYED)


class PaymentController(Controller):
    path = "/v1/payments"
    tags = ["payments"]
    security = SECURED

    @post(
        "/",
        operation_id="makePayment",
        summary="Take a card payment",
        description=MakePayment.__doc__,
        before_request=refuse_card_numbers,
        responses={
            **errors(400, 401, 403, 404, 409, 422),
            HTTP_202_ACCEPTED: ResponseSpec(
                data_container=Payment,
                description="The gateway has not confirmed yet; the payment is pending.",
            ),
            HTTP_402_PAYMENT_REQUIRED: ResponseSpec(
                data_container=Payment,
                description="The card was declined; `failure_code` holds the gateway's code.",
            ),
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=Problem,
                media_type=PROBLEM_JSON,
                description="The gateway's circuit breaker is open, or the database is busy "
                "or unreachable; retry after Retry-After.",
            ),
        },
        operation_class=_ReplayableLocated,
    )
    async def make_payment(
        self,
        data: NewPaymentBody,
        idempotency_key: IdempotencyKey,
        actor: FromDishka[Actor],
        use: FromDishka[MakePayment],
    ) -> Response[Payment]:
        result = await use.execute(actor, idempotency_key, data)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        location = f"/v1/payments/{result.payment.id}"
        return located(result.payment, location, status=_STATUS[result.outcome], headers=headers)

    @get(
        "/",
        operation_id="listPayments",
        summary="List payments",
        description=ListPayments.__doc__,
        responses=errors(400, 401, 404, 422),
    )
    async def list_payments(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[ListPayments],
        account_id: Annotated[UUID | None, QueryParameter(description="One account's")] = None,
        status: Annotated[PaymentStatus | None, QueryParameter()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Payment]:
        return await use.execute(
            actor, account_id=account_id, status=status, limit=limit, cursor=cursor
        )

    @get(
        "/{payment_id:uuid}",
        operation_id="getPayment",
        summary="One payment",
        description=GetPayment.__doc__,
        responses=errors(400, 401, 404),
    )
    async def get_payment(
        self, payment_id: FromPath[UUID], actor: FromDishka[Actor], use: FromDishka[GetPayment]
    ) -> Payment:
        return await use.execute(actor, payment_id)

    @post(
        "/{payment_id:uuid}/refunds",
        operation_id="refundPayment",
        summary="Refund a payment",
        description=RefundPayment.__doc__,
        before_request=refuse_card_numbers,
        responses={
            **errors(400, 401, 403, 404, 409, 422),
            HTTP_202_ACCEPTED: ResponseSpec(
                data_container=Refunded,
                description="The gateway has not answered: the refund is `pending`, its amount "
                "reserved, and the recovery task completes it once the gateway answers. Do not "
                "send it again under another key; the same key replays the refund as it is.",
            ),
            HTTP_200_OK: ResponseSpec(
                data_container=Refunded,
                description="The refund `failed` at the gateway after it was made (a replay, "
                "or an answer that came late): nothing reached the debtor, and its amount may "
                "be refunded again under a new key.",
            ),
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=Problem,
                media_type=PROBLEM_JSON,
                description="The gateway could not be reached: nothing was refunded, and the "
                "key is free to retry later. Or the database is busy or unreachable: retry "
                "under the same key, which replays what was done. (A gateway that refuses the "
                "refund, as for a payment already refunded at the gateway, is a 409.)",
            ),
        },
        operation_class=_Replayable,
    )
    async def refund_payment(
        self,
        payment_id: FromPath[UUID],
        data: NewRefundBody,
        idempotency_key: IdempotencyKey,
        actor: FromDishka[Actor],
        use: FromDishka[RefundPayment],
    ) -> Response[Refunded]:
        result = await use.execute(actor, idempotency_key, payment_id, data)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        body = Refunded(refund=result.refund, payment=result.payment)
        return Response(body, status_code=_REFUND_ANSWERS[result.refund.status], headers=headers)


_REFUND_ANSWERS = {
    RefundStatus.COMPLETED: HTTP_201_CREATED,
    RefundStatus.PENDING: HTTP_202_ACCEPTED,
    RefundStatus.FAILED: HTTP_200_OK,
}


class PaymentProcessorController(Controller):
    path = "/v1/payment-processors"
    tags = ["payments"]
    security = SECURED

    @get(
        "/",
        operation_id="listPaymentProcessors",
        summary="List the agency's payment processors",
        description=ListPaymentProcessors.__doc__,
        responses=errors(401),
    )
    async def list_processors(
        self, actor: FromDishka[Actor], use: FromDishka[ListPaymentProcessors]
    ) -> list[PaymentProcessor]:
        return await use.execute(actor)

    @post(
        "/",
        operation_id="addPaymentProcessor",
        summary="Add a payment processor",
        description=AddPaymentProcessor.__doc__,
        responses=errors(400, 401, 403, 422),
    )
    async def add_processor(
        self,
        data: NewPaymentProcessorBody,
        actor: FromDishka[Actor],
        use: FromDishka[AddPaymentProcessor],
    ) -> PaymentProcessor:
        return await use.execute(actor, data)
