"""Stripe webhook deliveries for tests: events shaped as Stripe sends them, signed as
Stripe signs them (HMAC-SHA256 over ``"{t}.{body}"``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

SECRET = "whsec_test_" + "s" * 24


def event(
    type_: str,
    payment_id: UUID | None,
    reference: str = "pi_test",
    *,
    event_id: str | None = None,
    amount_refunded: int = 0,
    refund_key: str | None = None,
    payment_intent: str = "pi_test",
    amount: int = 1_000,
    created: datetime | None = None,
) -> dict[str, Any]:
    """``reference``: the PaymentIntent's id, or the refund's for ``refund.failed``, whose
    metadata holds only the key the refund was made under (``payment_id`` is not used),
    and which refunded ``amount`` of ``payment_intent``. ``created``: when Stripe made the
    event (left out if not given)."""
    metadata = {} if payment_id is None else {"debtflow_payment_id": str(payment_id)}
    if type_ == "refund.failed":
        metadata = {} if refund_key is None else {"idempotency_key": refund_key}
        obj: dict[str, Any] = {
            "id": reference,
            "object": "refund",
            "amount": amount,
            "status": "failed",
            "failure_reason": "expired_or_canceled_card",
            "payment_intent": payment_intent,
            "metadata": metadata,
        }
    elif type_ == "charge.refunded":
        obj = {
            "id": "ch_test",
            "object": "charge",
            "payment_intent": reference,
            "amount_refunded": amount_refunded,
            "metadata": metadata,
        }
    else:
        obj = {"id": reference, "object": "payment_intent", "metadata": metadata}
        if type_ == "payment_intent.payment_failed":
            obj["last_payment_error"] = {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            }
    made = {
        "id": event_id or f"evt_{secrets.token_hex(8)}",
        "object": "event",
        "type": type_,
        "data": {"object": obj},
    }
    if created is not None:
        made["created"] = int(created.timestamp())
    return made


def signed(
    payload: dict[str, Any] | bytes, at: datetime, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery signed at ``at``."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    timestamp = int(at.timestamp())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    header = f"t={timestamp},v1={mac.hexdigest()}"
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}
