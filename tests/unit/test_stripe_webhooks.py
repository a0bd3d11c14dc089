"""Stripe's webhook deliveries become core gateway events, or are refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from debtflow_adapters.stripe.webhooks import StripeWebhookVerifier, WebhooksOff
from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.errors import NotFound, ValidationFailed
from tests.support.stripe_events import SECRET, event, signed

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAYMENT = uuid.uuid4()


def verify(payload, at=NOW, received_at=NOW, secret=SECRET):
    body, headers = signed(payload, at, secret)
    return StripeWebhookVerifier(SECRET).verify(body, headers["Stripe-Signature"], received_at)


def test_a_success_names_our_payment_and_the_payment_intent():
    made = event("payment_intent.succeeded", PAYMENT, "pi_123", event_id="evt_1")
    assert verify(made) == GatewayEvent(
        id="evt_1",
        type=GatewayEventType.PAYMENT_SUCCEEDED,
        payment_id=PAYMENT,
        reference="pi_123",
        received_at=NOW,
    )


def test_a_failure_carries_the_decline():
    failed = verify(event("payment_intent.payment_failed", PAYMENT, "pi_123"))
    assert (failed.type, failed.decline_code, failed.message) == (
        GatewayEventType.PAYMENT_FAILED,
        "insufficient_funds",
        "Your card has insufficient funds.",
    )


def test_a_refund_carries_the_refunded_total_and_its_payment_intent():
    refunded = verify(event("charge.refunded", PAYMENT, "pi_123", amount_refunded=700))
    assert (refunded.type, refunded.reference, refunded.amount_refunded) == (
        GatewayEventType.CHARGE_REFUNDED,
        "pi_123",
        700,
    )


def test_a_failed_refund_names_its_key_the_gateways_reference_and_the_reason():
    key = f"{uuid.uuid4()}:r-1:{uuid.uuid4()}"
    made = event(
        "refund.failed",
        None,
        "re_123",
        event_id="evt_2",
        refund_key=key,
        payment_intent="pi_9",
        amount=700,
        created=NOW - timedelta(seconds=2),
    )
    assert verify(made) == GatewayEvent(
        id="evt_2",
        type=GatewayEventType.REFUND_FAILED,
        payment_id=None,
        reference="re_123",
        refund_key=key,
        decline_code="expired_or_canceled_card",
        payment_reference="pi_9",
        refund_amount=700,
        created_at=NOW - timedelta(seconds=2),
        received_at=NOW,
    )


def test_a_refund_made_at_the_dashboard_that_failed_names_its_payment_intent_and_amount():
    failed = verify(event("refund.failed", None, "re_9", payment_intent="pi_9", amount=700))
    assert (failed.refund_key, failed.reference, failed.payment_reference) == (None, "re_9", "pi_9")
    assert failed.refund_amount == 700


def test_a_charge_we_did_not_make_has_no_payment():
    foreign = event("payment_intent.succeeded", None)
    assert verify(foreign).payment_id is None
    edited = event("payment_intent.succeeded", None)
    edited["data"]["object"]["metadata"] = {"debtflow_payment_id": "not-a-uuid"}
    assert verify(edited).payment_id is None


def test_other_types_are_genuine_but_ignored():
    assert verify(event("customer.created", None)) is None


@pytest.mark.parametrize("skew", [timedelta(seconds=-301), timedelta(seconds=301)])
def test_a_timestamp_too_far_from_our_clock_is_refused(skew):
    with pytest.raises(ValidationFailed) as refused:
        verify(event("payment_intent.succeeded", PAYMENT), at=NOW + skew)
    assert refused.value.field == "Stripe-Signature"
    assert verify(event("payment_intent.succeeded", PAYMENT), at=NOW - timedelta(seconds=300))


@pytest.mark.parametrize("extra", [",t={now}", ",t={now},v1=0"])
def test_a_stale_delivery_with_a_fresh_timestamp_appended_is_refused(extra):
    """The SDK checks the signature against the first ``t=``: a second, added without the
    secret, must not be the one whose freshness is checked."""
    body, headers = signed(event("payment_intent.succeeded", PAYMENT), NOW - timedelta(days=2))
    header = headers["Stripe-Signature"] + extra.format(now=int(NOW.timestamp()))
    with pytest.raises(ValidationFailed) as refused:
        StripeWebhookVerifier(SECRET).verify(body, header, NOW)
    assert refused.value.field == "Stripe-Signature"


def test_a_fresh_delivery_with_a_second_timestamp_is_refused_too():
    body, headers = signed(event("payment_intent.succeeded", PAYMENT), NOW)
    with pytest.raises(ValidationFailed):
        StripeWebhookVerifier(SECRET).verify(body, headers["Stripe-Signature"] + ",t=1", NOW)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe", b"{", b"[]", b'{"id": "evt_1"}', b'{"id": 1, "type": "x", "data": {}}'],
)
def test_a_malformed_body_is_refused(body):
    with pytest.raises(ValidationFailed):
        verify(body)


def test_a_forged_or_missing_signature_is_refused():
    with pytest.raises(ValidationFailed):
        verify(event("payment_intent.succeeded", PAYMENT), secret="whsec_other")
    with pytest.raises(ValidationFailed):
        StripeWebhookVerifier(SECRET).verify(b"{}", None, NOW)


def test_without_a_secret_every_delivery_is_not_found():
    body, headers = signed(event("payment_intent.succeeded", PAYMENT), NOW)
    with pytest.raises(NotFound):
        WebhooksOff().verify(body, headers["Stripe-Signature"], NOW)
