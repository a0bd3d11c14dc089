"""Stripe's webhooks, checked and translated into the core's :class:`GatewayEvent`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import stripe

from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.errors import NotFound, ValidationFailed
from debtflow_core.ports.gateway_events import WebhookVerifier

TOLERANCE = timedelta(seconds=300)
"""How far a delivery's signed timestamp may be from our clock: Stripe's own default."""

SIGNATURE = "Stripe-Signature"


class _Error(msgspec.Struct):
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class _Object(msgspec.Struct):
    """The fields DebtFlow reads of a PaymentIntent (``payment_intent.*``), a Charge
    (``charge.refunded``) or a Refund (``refund.failed``); Stripe copies a PaymentIntent's
    metadata onto its charges, and a refund has the metadata it was made with. A Charge
    tells its refunded total only: since API version 2022-11-15 its refunds, and so their
    ids, are no longer in it."""

    id: str
    metadata: dict[str, str] = {}
    payment_intent: str | None = None
    amount: int | None = None
    amount_refunded: int | None = None
    last_payment_error: _Error | None = None
    failure_reason: str | None = None


class _Data(msgspec.Struct):
    object: _Object


class _Event(msgspec.Struct):
    id: str
    type: str
    data: _Data
    created: int | None = None


class StripeWebhookVerifier(WebhookVerifier):
    """Checks the ``Stripe-Signature`` header with ``stripe.Webhook.construct_event``
    (HMAC-SHA256 over the timestamp and the raw body, with the endpoint's secret).

    The timestamp is checked against ``received_at``, our clock, rather than the SDK's
    ``time.time()``: the SDK's own check is switched off (``tolerance=0``) and done here,
    :data:`TOLERANCE` either way, so a delivery signed in the future is refused too. It is
    the timestamp the signature covers: a header with more than one is refused.

    ``payment_intent.succeeded``, ``payment_intent.payment_failed``, ``charge.refunded``
    and ``refund.failed`` become events; any other genuine type is ``None``. Our payment
    id comes from the ``debtflow_payment_id`` metadata the gateway put on the
    PaymentIntent; a refund's key from the ``idempotency_key`` metadata it was made with,
    and, for a refund made at Stripe without one, its PaymentIntent and amount.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def verify(
        self, payload: bytes, signature: str | None, received_at: datetime
    ) -> GatewayEvent | None:
        try:
            stripe.Webhook.construct_event(payload, signature, self._secret, tolerance=0)
        except stripe.SignatureVerificationError:
            raise ValidationFailed(
                "the signature is missing or does not match this endpoint's secret",
                field=SIGNATURE,
            ) from None
        except (ValueError, AttributeError):  # not UTF-8, not JSON, not a JSON object
            raise ValidationFailed("the body is not a Stripe event", field="body") from None
        signed_at = datetime.fromtimestamp(_timestamp(signature or ""), UTC)
        if abs(received_at - signed_at) > TOLERANCE:
            raise ValidationFailed(
                f"the signature's timestamp is more than {TOLERANCE.seconds} s from our clock",
                field=SIGNATURE,
            )
        try:
            event = msgspec.json.decode(payload, type=_Event)
        except msgspec.ValidationError as error:
            raise ValidationFailed(
                f"the body is not a Stripe event: {error}", field="body"
            ) from None
        if event.type not in GatewayEventType.__members__.values():
            return None
        return _translate(event, received_at)


def _timestamp(header: str) -> int:
    """The ``t=`` of a header the SDK has just verified, read as the SDK reads it.

    The SDK checks the signature against the first ``t=`` and ignores any other, which
    anyone may append without the secret: the freshness of another would let a stale
    delivery through. Stripe sends one, so a header with more is refused.
    """
    items = [item.split("=", 2) for item in header.split(",")]
    stamps = [item[1] for item in items if item[0] == "t" and len(item) > 1]
    if len(stamps) != 1:
        raise ValidationFailed("the signature has more than one timestamp", field=SIGNATURE)
    return int(stamps[0])


def _translate(event: _Event, received_at: datetime) -> GatewayEvent:
    type_ = GatewayEventType(event.type)
    obj = event.data.object
    fields: dict[str, Any] = {}
    if type_ is GatewayEventType.CHARGE_REFUNDED:
        reference = obj.payment_intent or obj.id
        fields["amount_refunded"] = obj.amount_refunded or 0
    elif type_ is GatewayEventType.REFUND_FAILED:
        reference = obj.id
        fields["refund_key"] = obj.metadata.get("idempotency_key")
        fields["decline_code"] = obj.failure_reason
        fields["payment_reference"] = obj.payment_intent
        fields["refund_amount"] = obj.amount
    else:
        reference = obj.id
        error = obj.last_payment_error
        if type_ is GatewayEventType.PAYMENT_FAILED and error is not None:
            fields["decline_code"] = error.decline_code or error.code
            fields["message"] = error.message
    return GatewayEvent(
        id=event.id,
        type=type_,
        payment_id=_payment_id(obj.metadata.get("debtflow_payment_id")),
        reference=reference,
        received_at=received_at,
        created_at=None if event.created is None else datetime.fromtimestamp(event.created, UTC),
        **fields,
    )


def _payment_id(raw: str | None) -> UUID | None:
    """Ours, or ``None`` for a charge DebtFlow did not make (or metadata someone edited)."""
    try:
        return None if raw is None else UUID(raw)
    except ValueError:
        return None


class WebhooksOff(WebhookVerifier):
    """Stands in when no webhook secret is configured: every delivery is NotFound, as if
    the endpoint did not exist, and nothing is stored."""

    def verify(
        self, payload: bytes, signature: str | None, received_at: datetime
    ) -> GatewayEvent | None:
        raise NotFound(
            "Stripe webhooks are not enabled here: set DEBTFLOW_STRIPE_WEBHOOK_SECRET to the "
            "endpoint's signing secret"
        )
