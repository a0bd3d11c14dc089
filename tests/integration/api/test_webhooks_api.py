"""POST /v1/webhooks/stripe through the real app, applied by the worker's real tasks on the
in-process broker (no DEBTFLOW_BROKER_URL): forged, stale and malformed deliveries are 400
and store nothing; replays and out-of-order events change nothing twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.webhooks import ApplyGatewayEvent
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, TestAdapters, make_settings
from tests.support.stripe_emulator import StripeEmulator
from tests.support.stripe_events import SECRET, event, signed

URL = "/v1/webhooks/stripe"
KNOWN = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "refund.failed",
}


@pytest.fixture
async def shop(database_url):
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    settings = make_settings(database_url, stripe_webhook_secret=SECRET)
    app = create_app(settings, TestAdapters(clock))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        processor = await api.run(
            AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
        )
        account = await alpha.account("ACC-1", collector="collector", balance=10_000)
        yield api, alpha, processor, account


async def pending_payment(api, alpha, processor, account, key="k1", amount=2_500) -> dict:
    response = await api.client.post(
        "/v1/payments",
        headers={**alpha.headers["collector"], "Idempotency-Key": key},
        json={
            "account_id": str(account.id),
            "amount": amount,
            "currency": "USD",
            "processor_id": str(processor.id),
            "payment_method": "pm_card_processing",
        },
    )
    assert response.status_code == 202, response.text
    return response.json()


async def deliver(api, payload, at=START):
    """Deliver a signed event; once it is accepted, wait for the in-process worker (in the
    app's own event loop) to apply it."""
    body, headers = signed(payload, at)
    response = await api.client.post(URL, content=body, headers=headers)
    if response.status_code == 200 and payload["type"] in KNOWN:
        for _ in range(500):
            if (await stored(api, payload["id"])).outcome is not None:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"event {payload['id']} was not applied")
    return response


async def settled(api, alpha, payment) -> dict:
    response = await api.client.get(f"/v1/payments/{payment['id']}", headers=alpha.headers["admin"])
    return response.json()


async def stored(api, event_id):
    async with api.app.state.dishka_container() as request:
        uow = await request.get(UnitOfWork)
        async with uow:
            return await uow.gateway_events.get(event_id)


async def test_a_succeeded_event_completes_a_pending_payment_once(shop):
    api, alpha, processor, account = shop
    payment = await pending_payment(api, alpha, processor, account)
    succeeded = event("payment_intent.succeeded", payment["id"], payment["gateway_reference"])

    first = await deliver(api, succeeded)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "new": True}
    assert (await settled(api, alpha, payment))["status"] == "completed"

    replay = await deliver(api, succeeded)
    assert replay.json() == {"received": True, "new": False}
    after = await settled(api, alpha, payment)
    assert after["status"] == "completed"
    assert (await stored(api, succeeded["id"])).outcome == "completed"
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 7_500


async def test_success_after_failure_changes_nothing_even_twice(shop):
    api, alpha, processor, account = shop
    payment = await pending_payment(api, alpha, processor, account)
    reference = payment["gateway_reference"]
    assert (
        await deliver(api, event("payment_intent.payment_failed", payment["id"], reference))
    ).status_code == 200
    failed = await settled(api, alpha, payment)
    assert (failed["status"], failed["failure_code"]) == ("failed", "insufficient_funds")

    for _ in range(2):
        late = event("payment_intent.succeeded", payment["id"], reference)
        assert (await deliver(api, late)).status_code == 200
        assert (await settled(api, alpha, payment))["status"] == "failed"
        assert (await stored(api, late["id"])).outcome == "ignored"
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 10_000


async def test_refund_events_count_once_and_success_after_refund_is_ignored(shop):
    api, alpha, processor, account = shop
    payment = await pending_payment(api, alpha, processor, account)
    reference = payment["gateway_reference"]
    await deliver(api, event("payment_intent.succeeded", payment["id"], reference))
    assert (await settled(api, alpha, payment))["status"] == "completed"

    refunded = event("charge.refunded", payment["id"], reference, amount_refunded=1_000)
    for delivery in (
        refunded,
        refunded,
        event("payment_intent.succeeded", payment["id"], reference),
    ):
        assert (await deliver(api, delivery)).status_code == 200
    after = await settled(api, alpha, payment)
    assert (after["status"], after["refunded_amount"]) == ("completed", 1_000)
    # A later event with the same refunded total (a redelivery under a new id) adds nothing.
    await deliver(api, event("charge.refunded", payment["id"], reference, amount_refunded=1_000))
    assert (await settled(api, alpha, payment))["refunded_amount"] == 1_000
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 8_500


async def test_a_refund_that_failed_later_is_taken_back_and_its_replay_says_so(shop):
    api, alpha, processor, account = shop
    payment = await pending_payment(api, alpha, processor, account)
    await deliver(
        api, event("payment_intent.succeeded", payment["id"], payment["gateway_reference"])
    )
    refund_url = f"/v1/payments/{payment['id']}/refunds"
    headers = {**alpha.headers["admin"], "Idempotency-Key": "r1"}
    made = await api.client.post(refund_url, headers=headers, json={"amount": 1_000})
    assert made.status_code == 201, made.text
    refund = made.json()["refund"]

    key = f"{alpha.admin.agency_id}:r1:{refund['id']}"  # the refund's metadata at Stripe
    failed = event("refund.failed", None, refund["gateway_reference"], refund_key=key)
    assert (await deliver(api, failed)).status_code == 200

    assert (await stored(api, failed["id"])).outcome == "refund_failed"
    assert (await settled(api, alpha, payment))["refunded_amount"] == 0
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 7_500
    replay = await api.client.post(refund_url, headers=headers, json={"amount": 1_000})
    assert replay.status_code == 200  # not 201: nothing was refunded
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["refund"]["status"] == "failed"


@pytest.mark.parametrize(
    "tamper",
    [
        "forged",
        "stale",
        "stale with a fresh timestamp appended",
        "future",
        "unsigned",
        "malformed",
        "not an object",
        "garbage header",
    ],
)
async def test_deliveries_we_cannot_trust_are_400_and_store_nothing(shop, tamper):
    api, alpha, processor, account = shop
    payment = await pending_payment(api, alpha, processor, account)
    payload = event("payment_intent.succeeded", payment["id"], payment["gateway_reference"])
    body, headers = signed(payload, START)
    if tamper == "forged":
        body, headers = signed(payload, START, secret="whsec_someone_else")
    elif tamper == "stale":
        body, headers = signed(payload, START - timedelta(seconds=301))
    elif tamper == "stale with a fresh timestamp appended":
        body, headers = signed(payload, START - timedelta(days=2))
        headers["Stripe-Signature"] += f",t={int(START.timestamp())}"
    elif tamper == "future":
        body, headers = signed(payload, START + timedelta(seconds=301))
    elif tamper == "unsigned":
        del headers["Stripe-Signature"]
    elif tamper == "malformed":
        body, headers = signed(b"{not json", START)
    elif tamper == "not an object":
        body, headers = signed(b"[1, 2]", START)
    else:
        headers["Stripe-Signature"] = "t=soon,v1=abc"

    response = await api.client.post(URL, content=body, headers=headers)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 400
    assert await stored(api, payload["id"]) is None
    assert (await settled(api, alpha, payment))["status"] == "pending"


async def test_a_signature_within_tolerance_is_accepted(shop):
    api, alpha, processor, account = shop
    payment = await pending_payment(api, alpha, processor, account)
    payload = event("payment_intent.succeeded", payment["id"], payment["gateway_reference"])
    response = await deliver(api, payload, at=START - timedelta(seconds=299))
    assert response.status_code == 200


@pytest.fixture
async def stripe_shop(database_url):
    """Payments through Stripe (the emulator, whose events bear the app's clock's times)."""
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    with StripeEmulator(clock=lambda: clock.now().timestamp()) as emulator:
        settings = make_settings(
            database_url,
            stripe_webhook_secret=SECRET,
            stripe_api_key=emulator.api_key,
            stripe_api_base=emulator.url,
        )
        app = create_app(settings, TestAdapters(clock))
        async with AsyncTestClient(app) as client:
            api = Api(app, client, clock)
            alpha = await api.tenant("alpha")
            processor = await api.run(
                AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Stripe", kind="stripe")
            )
            account = await alpha.account("ACC-1", collector="collector", balance=10_000)
            yield api, alpha, processor, account, emulator


async def test_refunds_the_bank_sends_back_are_taken_back_whoever_made_them(stripe_shop):
    """A refund made through DebtFlow and one made at Stripe's Dashboard, both sent back
    by the debtor's bank days later: Stripe's own events, in the order it made them, take
    each back off the balance once."""
    api, alpha, processor, account, stripe = stripe_shop
    paid = await api.client.post(
        "/v1/payments",
        headers={**alpha.headers["admin"], "Idempotency-Key": "p1"},
        json={
            "account_id": str(account.id),
            "amount": 5_000,
            "currency": "USD",
            "processor_id": str(processor.id),
            "payment_method": "pm_card_visa",
        },
    )
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    made = await api.client.post(
        f"/v1/payments/{payment['id']}/refunds",
        headers={**alpha.headers["admin"], "Idempotency-Key": "r1"},
        json={"amount": 1_000},
    )
    assert made.status_code == 201, made.text
    api.clock.advance(timedelta(hours=1))
    dashboard = stripe.refund_at_dashboard(payment["gateway_reference"], 2_000)
    api.clock.advance(timedelta(days=3))
    stripe.fail_refund(made.json()["refund"]["gateway_reference"])
    stripe.fail_refund(dashboard["id"])

    outcomes = []
    for delivery in stripe.events:
        assert (await deliver(api, delivery, at=api.clock.now())).status_code == 200
        outcomes.append((delivery["type"], (await stored(api, delivery["id"])).outcome))

    assert outcomes == [
        ("charge.refunded", "ignored"),  # ours, completed already
        ("charge.refunded", "refunded"),  # the Dashboard's
        ("refund.failed", "refund_failed"),
        ("refund.failed", "refund_failed"),
    ]
    async with api.app.state.dishka_container() as request:  # the access tokens ran out
        uow = await request.get(UnitOfWork)
        async with uow:
            after = await uow.payments.get(UUID(payment["id"]))
            refunds = await uow.payments.refunds(after.id)
            balance = (await uow.accounts.get(account.id)).current_balance
    assert (after.refunded_amount, balance) == (0, 10_000 - 5_000)
    assert sorted((r.amount, r.status, r.gateway_reference) for r in refunds) == [
        (1_000, "failed", made.json()["refund"]["gateway_reference"]),
        (2_000, "failed", dashboard["id"]),
    ]


async def test_other_event_types_are_acknowledged_and_ignored(shop):
    api, *_ = shop
    other = event("customer.created", None)
    response = await deliver(api, other)
    assert response.json() == {"received": True, "new": False}
    assert await stored(api, other["id"]) is None


async def test_without_a_webhook_secret_the_route_is_404(database_url):
    app = create_app(make_settings(database_url))
    async with AsyncTestClient(app) as client:
        body, headers = signed(event("payment_intent.succeeded", None), START)
        response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 404
    assert "DEBTFLOW_STRIPE_WEBHOOK_SECRET" in response.json()["detail"]


@pytest.fixture
async def pg_shop(postgres_engine):
    url = postgres_engine.url.render_as_string(hide_password=False)
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(make_settings(url, stripe_webhook_secret=SECRET), TestAdapters(clock))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        processor = await api.run(
            AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
        )
        account = await alpha.account("ACC-1", collector="collector", balance=10_000)
        yield api, alpha, processor, account


@pytest.mark.postgres
async def test_concurrent_deliveries_of_one_event_store_and_apply_it_once(pg_shop):
    api, alpha, processor, account = pg_shop
    payment = await pending_payment(api, alpha, processor, account)
    failed = event("payment_intent.payment_failed", payment["id"], payment["gateway_reference"])
    body, headers = signed(failed, START)

    answers = await asyncio.gather(
        *(api.client.post(URL, content=body, headers=headers) for _ in range(10))
    )

    assert sorted(a.json()["new"] for a in answers) == [False] * 9 + [True]
    await deliver(api, failed)  # waits until it is applied
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 10_000


@pytest.mark.postgres
async def test_concurrent_events_about_one_payment_settle_it_once(pg_shop):
    """Two failure events (Stripe may send one per attempt) and a success, all at once: the
    payment is settled by one of them, and its hold is given back at most once."""
    api, alpha, processor, account = pg_shop
    payment = await pending_payment(api, alpha, processor, account)
    reference = payment["gateway_reference"]
    events = [
        event("payment_intent.payment_failed", payment["id"], reference),
        event("payment_intent.payment_failed", payment["id"], reference),
        event("payment_intent.succeeded", payment["id"], reference),
    ]

    await asyncio.gather(*(deliver(api, e) for e in events))

    after = await settled(api, alpha, payment)
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    expected = 10_000 if after["status"] == "failed" else 7_500
    assert balance.json()["current_balance"] == expected
    outcomes = sorted([(await stored(api, e["id"])).outcome for e in events])
    assert outcomes.count("ignored") == 2
    audit = await api.client.get(
        "/v1/audit-log", headers=alpha.headers["admin"], params={"entity_id": payment["id"]}
    )
    actions = [e["action"] for e in audit.json()["items"]]
    assert sorted(actions) == sorted(["payment.created", f"payment.{after['status']}"])


@pytest.mark.postgres
async def test_events_applied_at_the_same_moment_give_the_hold_back_once(pg_shop):
    api, alpha, processor, account = pg_shop
    for attempt in range(5):
        payment = await pending_payment(api, alpha, processor, account, key=f"race-{attempt}")
        reference = payment["gateway_reference"]
        events = [
            GatewayEvent(
                id=f"evt_race_{attempt}_{n}",
                type=GatewayEventType.PAYMENT_FAILED,
                payment_id=UUID(payment["id"]),
                reference=reference,
                received_at=START,
            )
            for n in range(3)
        ]
        async with api.app.state.dishka_container() as request:
            uow = await request.get(UnitOfWork)
            async with uow:
                for made in events:
                    await uow.gateway_events.record(made)
                await uow.commit()

        async def apply(event_id: str) -> str:
            async with api.app.state.dishka_container() as request:
                return await (await request.get(ApplyGatewayEvent)).execute(event_id)

        outcomes = await asyncio.gather(*(apply(e.id) for e in events))

        assert sorted(outcomes) == ["failed", "ignored", "ignored"]
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 10_000


@pytest.mark.postgres
async def test_refund_events_applied_at_the_same_moment_count_each_refund_once(pg_shop):
    """One event run three times at once (a job delivered more than once), and a later
    total beside it: the payment ends refunded by the latest total, not by their sum."""
    api, alpha, processor, account = pg_shop
    payment = await pending_payment(api, alpha, processor, account, amount=5_000)
    reference = payment["gateway_reference"]
    await deliver(api, event("payment_intent.succeeded", payment["id"], reference))
    totals = {"evt_refund_a": 1_000, "evt_refund_b": 1_500}
    async with api.app.state.dishka_container() as request:
        uow = await request.get(UnitOfWork)
        async with uow:
            for id_, total in totals.items():
                await uow.gateway_events.record(
                    GatewayEvent(
                        id=id_,
                        type=GatewayEventType.CHARGE_REFUNDED,
                        payment_id=UUID(payment["id"]),
                        reference=reference,
                        amount_refunded=total,
                        received_at=START,
                    )
                )
            await uow.commit()

    async def apply(event_id: str) -> str:
        async with api.app.state.dishka_container() as request:
            return await (await request.get(ApplyGatewayEvent)).execute(event_id)

    await asyncio.gather(*(apply(id_) for id_ in ["evt_refund_a"] * 3 + ["evt_refund_b"]))

    after = await settled(api, alpha, payment)
    assert after["refunded_amount"] == 1_500
    balance = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    assert balance.json()["current_balance"] == 10_000 - 5_000 + 1_500
