"""PaymentGateway: the sandbox and Stripe answer alike.

Stripe runs for real through the SDK and over HTTP, against the local emulator; what only
Stripe can do wrong (errors, timeouts, a bad key, what it is sent) is tested on it alone.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from debtflow_adapters.gateways.circuit_breaker import CircuitBreakerGateway
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_adapters.stripe.gateway import StripeGateway
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.errors import GatewayRefused, GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
)
from tests.support.stripe_emulator import StripeEmulator

TIMEOUT = 0.5

# The adapters ignore it: choosing the gateway by kind is ProcessorGateways's job.
KIND = ProcessorKind.SANDBOX


def charge(
    key: str = "charge-1", method: str = "pm_card_visa", amount: int = 2_500
) -> ChargeRequest:
    return ChargeRequest(
        processor=KIND,
        idempotency_key=key,
        amount=amount,
        currency="USD",
        payment_method=method,
        description="DebtFlow payment 1",
    )


@pytest.fixture
async def stripe_gateway(stripe_emulator: StripeEmulator) -> AsyncIterator[StripeGateway]:
    gateway = StripeGateway(
        stripe_emulator.api_key, api_base=stripe_emulator.url, timeout_seconds=TIMEOUT
    )
    yield gateway
    await gateway.aclose()


@pytest.fixture(params=["sandbox", "stripe"])
def gateway(request: pytest.FixtureRequest) -> PaymentGateway:
    if request.param == "sandbox":
        return SandboxGateway()
    return request.getfixturevalue("stripe_gateway")


# --- The contract: every adapter ---


async def test_a_good_card_is_charged(gateway):
    result = await gateway.charge(charge())
    assert result.outcome is ChargeOutcome.SUCCEEDED
    assert result.reference.startswith("pi_")
    assert (result.decline_code, result.message) == (None, None)


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
    ],
)
async def test_a_declined_card_answers_the_issuers_code(gateway, method, code):
    result = await gateway.charge(charge(method=method))
    assert result.outcome is ChargeOutcome.DECLINED
    assert result.decline_code == code
    assert result.message
    assert result.reference.startswith("pi_")


async def test_a_payment_awaiting_its_bank_is_processing(gateway):
    result = await gateway.charge(charge(method="pm_card_processing"))
    assert result.outcome is ChargeOutcome.PROCESSING
    assert result.reference.startswith("pi_")


async def test_a_charge_is_looked_up_by_its_reference(gateway):
    paid = await gateway.charge(charge())
    assert await gateway.look_up(ChargeLookup(processor=KIND, reference=paid.reference)) == paid


async def test_a_payment_left_processing_is_found_ended_once_its_bank_answered(gateway, request):
    pending = await gateway.charge(charge(method="pm_card_processing"))
    lookup = ChargeLookup(processor=KIND, reference=pending.reference)
    if isinstance(gateway, StripeGateway):
        assert await gateway.look_up(lookup) == pending
        request.getfixturevalue("stripe_emulator").clear(pending.reference)
    assert await gateway.look_up(lookup) == ChargeResult(
        outcome=ChargeOutcome.SUCCEEDED, reference=pending.reference
    )


async def test_looking_up_a_charge_the_gateway_never_made_is_refused(gateway):
    with pytest.raises(GatewayRefused):
        await gateway.look_up(ChargeLookup(processor=KIND, reference="pi_unknown"))


@pytest.mark.parametrize("method", ["pm_card_visa", "pm_card_chargeDeclined"])
async def test_a_repeated_key_answers_the_first_result_without_charging_again(
    gateway, method, request
):
    first = await gateway.charge(charge("charge-1", method))
    assert await gateway.charge(charge("charge-1", method)) == first
    assert await gateway.charge(charge("charge-2", method)) != first
    if isinstance(gateway, StripeGateway):
        assert request.getfixturevalue("stripe_emulator").performed("charge-1") == 1


async def test_a_payment_is_refunded_in_part_then_in_full(gateway):
    paid = await gateway.charge(charge(amount=2_500))
    part = await gateway.refund(
        RefundRequest(
            processor=KIND,
            idempotency_key="refund-1",
            charge_reference=paid.reference,
            amount=1_000,
        )
    )
    rest = await gateway.refund(
        RefundRequest(
            processor=KIND,
            idempotency_key="refund-2",
            charge_reference=paid.reference,
            amount=1_500,
        )
    )
    assert part.reference.startswith("re_")
    assert rest.reference.startswith("re_")
    assert part != rest


async def test_a_repeated_refund_key_answers_the_first_refund(gateway, request):
    paid = await gateway.charge(charge(amount=2_500))
    refund = RefundRequest(
        processor=KIND, idempotency_key="refund-1", charge_reference=paid.reference, amount=2_500
    )
    first = await gateway.refund(refund)
    assert await gateway.refund(refund) == first
    if isinstance(gateway, StripeGateway):
        assert request.getfixturevalue("stripe_emulator").performed("refund-1") == 1


async def test_no_answer_is_gateway_unavailable_with_the_outcome_unknown(gateway, request):
    paid = await gateway.charge(charge("charge-1"))
    if isinstance(gateway, SandboxGateway):
        gateway.failing = True
    else:
        request.getfixturevalue("stripe_emulator").fail_next(3)
    with pytest.raises(GatewayUnavailable) as charging:
        await gateway.charge(charge("charge-2"))
    with pytest.raises(GatewayUnavailable) as looking_up:
        await gateway.look_up(ChargeLookup(processor=KIND, reference=paid.reference))
    with pytest.raises(GatewayUnavailable) as refunding:
        await gateway.refund(
            RefundRequest(
                processor=KIND,
                idempotency_key="refund-1",
                charge_reference=paid.reference,
                amount=100,
            )
        )
    assert charging.value.request_sent
    assert not isinstance(looking_up.value, GatewayRefused)
    assert refunding.value.request_sent


# --- Stripe alone ---


async def test_stripe_is_sent_a_confirmed_card_payment_under_our_key(
    stripe_gateway, stripe_emulator
):
    await stripe_gateway.charge(charge("charge-1"))
    [sent] = stripe_emulator.received
    assert sent.path == "/v1/payment_intents"
    assert sent.idempotency_key == "charge-1"
    assert sent.params == {
        "amount": "2500",
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "payment_method_types": ["card"],
        "confirm": "true",
        "description": "DebtFlow payment 1",
        "metadata": {"idempotency_key": "charge-1"},
    }


async def test_stripe_is_told_our_payment_id_for_its_webhooks(stripe_gateway, stripe_emulator):
    payment_id = uuid.uuid4()
    await stripe_gateway.charge(msgspec.structs.replace(charge("c"), payment_id=payment_id))
    [sent] = stripe_emulator.received
    assert sent.params["metadata"]["debtflow_payment_id"] == str(payment_id)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_stripe_failing_is_no_answer_and_the_key_still_charges_once(
    stripe_gateway, stripe_emulator, status
):
    stripe_emulator.fail_next(1, status=status)
    with pytest.raises(GatewayUnavailable) as caught:
        await stripe_gateway.charge(charge("charge-1"))
    assert caught.value.request_sent
    assert (await stripe_gateway.charge(charge("charge-1"))).outcome is ChargeOutcome.SUCCEEDED
    assert stripe_emulator.performed("charge-1") == 1


async def test_a_lost_answer_is_no_answer_and_asking_again_finds_the_charge(
    stripe_gateway, stripe_emulator
):
    stripe_emulator.hang(10)  # carried out, answered long after the client gave up
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable) as caught:
        await stripe_gateway.charge(charge("charge-1"))
    assert time.monotonic() - started < TIMEOUT * 4
    assert caught.value.request_sent
    assert (await stripe_gateway.charge(charge("charge-1"))).outcome is ChargeOutcome.SUCCEEDED
    assert stripe_emulator.performed("charge-1") == 1


async def test_an_unreachable_stripe_is_no_answer():
    gateway = StripeGateway("sk_test_x", api_base="http://127.0.0.1:1", timeout_seconds=TIMEOUT)
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.charge(charge())
    await gateway.aclose()
    assert caught.value.request_sent  # the SDK does not say whether the request had left


async def test_a_rejected_api_key_is_refused_before_anything_happens(stripe_emulator, caplog):
    secret = "sk_test_revoked_0123456789"
    gateway = StripeGateway(secret, api_base=stripe_emulator.url)
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.charge(charge("charge-1"))
    await gateway.aclose()
    assert not caught.value.request_sent  # nothing happened: the payment need not wait
    assert not isinstance(caught.value, GatewayRefused)  # every call fails: a breaker counts it
    assert stripe_emulator.performed("charge-1") == 0
    [logged] = [r for r in caplog.records if r.name == "debtflow.stripe"]
    assert logged.levelno == logging.ERROR
    assert logged.__dict__["http_status"] == 401
    assert secret not in str(logged.__dict__)
    assert "pm_card_visa" not in str(logged.__dict__)


async def test_a_card_asking_for_3d_secure_is_declined(stripe_gateway):
    result = await stripe_gateway.charge(charge(method="pm_card_authenticationRequired"))
    assert result.outcome is ChargeOutcome.DECLINED
    assert result.decline_code == "authentication_required"
    assert result.reference.startswith("pi_")


async def test_a_payment_its_bank_declined_after_processing_is_found_declined(
    stripe_gateway, stripe_emulator
):
    pending = await stripe_gateway.charge(charge(method="pm_card_processing"))
    stripe_emulator.clear(pending.reference, declined_by="pm_card_chargeDeclinedInsufficientFunds")
    found = await stripe_gateway.look_up(ChargeLookup(processor=KIND, reference=pending.reference))
    assert found == ChargeResult(
        outcome=ChargeOutcome.DECLINED,
        reference=pending.reference,
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
    )
    [_, asked] = stripe_emulator.received
    assert asked.path == f"/v1/payment_intents/{pending.reference}"


async def test_a_charge_stripe_refuses_as_invalid_is_declined(stripe_gateway):
    result = await stripe_gateway.charge(charge(method="pm_card_unknown"))
    assert result.outcome is ChargeOutcome.DECLINED
    assert result.decline_code == "resource_missing"
    assert result.reference.startswith("req_")  # no PaymentIntent: Stripe's request log entry


async def test_a_refund_stripe_refuses_is_known_not_to_have_happened(stripe_gateway):
    paid = await stripe_gateway.charge(charge(amount=2_500))
    with pytest.raises(GatewayRefused) as caught:
        await stripe_gateway.refund(
            RefundRequest(
                processor=KIND,
                idempotency_key="refund-1",
                charge_reference=paid.reference,
                amount=2_501,
            )
        )
    assert not caught.value.request_sent
    assert "amount_too_large" in caught.value.detail


async def test_refunds_of_a_payment_refunded_elsewhere_leave_the_breaker_closed(
    stripe_gateway, stripe_emulator
):
    """Refunded in Stripe's Dashboard, then retried by an admin here, again and again:
    Stripe answers each time, so card payments must not pause."""
    paid = await stripe_gateway.charge(charge("charge-1", amount=2_500))
    gateway = CircuitBreakerGateway(stripe_gateway, threshold=3, reset_seconds=60)
    dashboard = RefundRequest(
        processor=KIND, idempotency_key="dashboard", charge_reference=paid.reference, amount=2_500
    )
    await stripe_gateway.refund(dashboard)

    for attempt in range(5):
        with pytest.raises(GatewayRefused) as caught:
            await gateway.refund(
                RefundRequest(
                    processor=KIND,
                    idempotency_key=f"refund-{attempt}",
                    charge_reference=paid.reference,
                    amount=2_500,
                )
            )
        assert not caught.value.request_sent
        assert "charge_already_refunded" in caught.value.detail

    assert await gateway.state() == "closed"
    assert (await gateway.charge(charge("charge-2"))).outcome is ChargeOutcome.SUCCEEDED
    assert stripe_emulator.performed("charge-2") == 1


async def test_a_key_stripe_would_refuse_is_sent_as_its_hash(stripe_gateway, stripe_emulator):
    key = "agency:" + "é" * 300
    first = await stripe_gateway.charge(charge(key))
    assert await stripe_gateway.charge(charge(key)) == first
    [stripe_key] = {received.idempotency_key for received in stripe_emulator.received}
    assert len(stripe_key) <= 255 and stripe_key.isascii()
    assert stripe_emulator.performed(stripe_key) == 1
