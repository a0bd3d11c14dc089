from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec


class GatewayEventType(enum.StrEnum):
    """The gateway's notifications DebtFlow acts on (named as Stripe names them)."""

    PAYMENT_SUCCEEDED = "payment_intent.succeeded"
    PAYMENT_FAILED = "payment_intent.payment_failed"
    CHARGE_REFUNDED = "charge.refunded"
    REFUND_FAILED = "refund.failed"


class GatewayEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A verified notification from the payment gateway, stored once by its id.

    ``payment_id`` is ours, sent to the gateway as metadata with the charge, so that an
    event finds its payment even when the charge's answer never reached us.
    ``amount_refunded`` is the charge's refunded total so far (``charge.refunded``).
    A ``refund.failed`` event's ``reference`` is the refund's, ``refund_key`` the key the
    refund was sent to the gateway under (which the gateway keeps as its metadata, and
    which names our refund), ``decline_code`` the gateway's reason, ``payment_reference``
    the gateway's reference of the payment refunded (a refund made at the gateway has no
    key of ours: its payment is found by this) and ``refund_amount`` what the refund was
    to give back.
    """

    id: str
    type: GatewayEventType
    payment_id: UUID | None
    reference: str | None
    decline_code: str | None = None
    message: str | None = None
    amount_refunded: int | None = None
    refund_key: str | None = None
    payment_reference: str | None = None
    refund_amount: int | None = None
    created_at: datetime | None = None
    """When the gateway made the event, by its clock (unknown for events stored before it
    was recorded)."""
    received_at: datetime
    processed_at: datetime | None = None
    outcome: str | None = None
