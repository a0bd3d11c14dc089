"""A payment's processor decides its gateway: the sandbox, or Stripe (here the local
emulator, through the real SDK) when a Stripe key is configured, each behind its own
circuit breaker."""

from __future__ import annotations

from datetime import timedelta

from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, TestAdapters, make_settings
from tests.support.stripe_emulator import StripeEmulator


async def add_processor(api, alpha, kind: str):
    return await api.client.post(
        "/v1/payment-processors",
        headers=alpha.headers["admin"],
        json={"name": kind.title(), "kind": kind},
    )


async def pay(api, alpha, account, processor_id, key):
    return await api.client.post(
        "/v1/payments",
        headers={**alpha.headers["admin"], "Idempotency-Key": key},
        json={
            "account_id": str(account.id),
            "amount": 1_000,
            "currency": "USD",
            "processor_id": processor_id,
            "payment_method": "pm_card_visa",
        },
    )


async def test_without_a_stripe_key_a_stripe_processor_is_refused(api, alpha):
    refused = await add_processor(api, alpha, "stripe")
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == "kind"
    assert "DEBTFLOW_STRIPE_API_KEY" in error["message"]
    assert (await add_processor(api, alpha, "sandbox")).status_code == 201
    listed = await api.client.get("/v1/payment-processors", headers=alpha.headers["admin"])
    assert [p["kind"] for p in listed.json()] == ["sandbox"]


async def test_each_processor_charges_through_its_own_gateway(
    database_url, stripe_emulator: StripeEmulator
):
    settings = make_settings(
        database_url,
        stripe_api_key=stripe_emulator.api_key,
        stripe_api_base=stripe_emulator.url,
    )
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(settings, TestAdapters(clock))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        account = await alpha.account("ACC-1", balance=10_000)
        stripe = (await add_processor(api, alpha, "stripe")).json()
        sandbox = (await add_processor(api, alpha, "sandbox")).json()

        by_stripe = await pay(api, alpha, account, stripe["id"], "via-stripe")
        by_sandbox = await pay(api, alpha, account, sandbox["id"], "via-sandbox")

        assert by_stripe.status_code == by_sandbox.status_code == 201
        agency_id = alpha.admin.agency_id
        stripe_key = f"{agency_id}:via-stripe:{by_stripe.json()['id']}"
        sandbox_key = f"{agency_id}:via-sandbox:{by_sandbox.json()['id']}"
        assert stripe_emulator.performed(stripe_key) == 1
        assert stripe_emulator.performed(sandbox_key) == 0
        assert by_stripe.json()["gateway_reference"].startswith("pi_")
        assert "_sandbox_" in by_sandbox.json()["gateway_reference"]
        ready = (await client.get("/ready")).json()
        states = {d["name"]: d["state"] for d in ready["dependencies"]}
        assert states == {
            "database": "up",
            "object_storage": "up",
            "payment_gateway": "up",
            "stripe_gateway": "up",
        }
