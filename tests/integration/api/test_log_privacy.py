"""The logs are JSON and never hold a secret, a token, card data or personal data: real
flows through the app (startup, sign-in, refresh, a forged token, a card number where a
payment method goes, an import whose personal-data rows fail, a forged webhook), with the
app's own stderr captured and searched line by line."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_http.app import create_app
from tests.integration.api.conftest import (
    JWT_SECRET,
    PASSWORD,
    START,
    Api,
    TestAdapters,
    make_settings,
)
from tests.support.stripe_events import SECRET as WEBHOOK_SECRET
from tests.support.stripe_events import event

STRIPE_KEY = "sk_test_" + secrets.token_hex(16)
LINK_SECRET = "link-" + secrets.token_hex(20)
NEW_PASSWORD = "Quartz-Vellum-" + secrets.token_hex(4)
FULL_NAME = "Zenobia Quartermaine"
EMAIL = "zenobia.quartermaine@alpha.example"
CARD = "4242 4242 4242 4242"
DEBTOR_FIRST, DEBTOR_LAST = "Philomena", "Cartwright-Smythe"
DEBTOR_EMAIL = "philomena.cartwright@example.org"
DEBTOR_PHONE = "+1 512 555 0199"
DEBTOR_STREET = "77 Sunflower Lane"


async def wait_until_finished(api: Api, headers: dict[str, str], run_id: str) -> dict:
    for _ in range(500):
        run = (await api.client.get(f"/v1/imports/{run_id}", headers=headers)).json()
        if run["status"] in ("succeeded", "partially_failed", "failed"):
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish")


async def test_no_log_line_holds_a_secret_a_token_card_or_personal_data(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    secrets_given = {
        "log_level": "debug",  # the most the app ever logs
        "stripe_api_key": STRIPE_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "link_secret": LINK_SECRET,
    }
    # A start and stop with everything that logs at startup (the in-process schedule).
    # On the in-memory store: the test client starts an app in a thread of its own, whose
    # event loop a database engine made there would then be tied to.
    starting = create_app(make_settings("memory://", in_process_scheduler=True, **secrets_given))
    async with AsyncTestClient(starting) as client:
        assert (await client.get("/health")).status_code == 200
    settings = make_settings(
        database_url, storage_url=f"file://{tmp_path / 'storage'}", **secrets_given
    )
    app = create_app(settings, TestAdapters(clock))  # logs to the captured stderr
    tokens: list[str] = []
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        admin = alpha.headers["admin"]
        tokens += [h["Authorization"].removeprefix("Bearer ") for h in alpha.headers.values()]

        created = await client.post(
            "/v1/users",
            headers=admin,
            json={
                "email": EMAIL,
                "full_name": FULL_NAME,
                "role": "collector",
                "password": NEW_PASSWORD,
            },
        )
        assert created.status_code == 201, created.text
        pair = await api.sign_in(EMAIL, NEW_PASSWORD)
        wrong = await client.post("/v1/auth/token", json={"email": EMAIL, "password": PASSWORD})
        assert wrong.status_code == 401
        spend = {"refresh_token": pair["refresh_token"]}
        rotated = (await client.post("/v1/auth/refresh", json=spend)).json()
        reused = await client.post("/v1/auth/refresh", json=spend)
        assert reused.status_code == 401
        tokens += [pair["access_token"], pair["refresh_token"]]
        tokens += [rotated["access_token"], rotated["refresh_token"]]

        forged = pair["access_token"][:-6] + "AAAAAA"
        for bad in (forged, "not-a-jwt-" + secrets.token_hex(8)):
            response = await client.get("/v1/me", headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401
            tokens.append(bad)

        processor = await api.run(
            AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
        )
        account = await alpha.account("ACC-1", collector="collector")
        paid = await client.post(
            "/v1/payments",
            headers={**alpha.headers["collector"], "Idempotency-Key": "card-1"},
            json={
                "account_id": str(account.id),
                "amount": 500,
                "currency": "USD",
                "processor_id": str(processor.id),
                "payment_method": CARD,
            },
        )
        assert paid.status_code == 422, paid.text

        rows = (
            "account_id,debtor_id,first_name,last_name,original_creditor,placed_balance,"
            "currency,charge_off_date,emails,phones,address_line1\r\n"
            f"A-1,D-1,{DEBTOR_FIRST},{DEBTOR_LAST},Northwind,-5.00,USD,2024-03-01,"
            f"{DEBTOR_EMAIL},{DEBTOR_PHONE},{DEBTOR_STREET}\r\n"
            f"A-2,D-2,{DEBTOR_FIRST},{DEBTOR_LAST},Northwind,12.50,USD,not-a-date,"
            f"not-an-email {DEBTOR_EMAIL},{DEBTOR_PHONE},{DEBTOR_STREET}\r\n"
        )
        upload = await client.post(
            "/v1/imports", files={"file": ("may.csv", rows.encode(), "text/csv")}, headers=admin
        )
        assert upload.status_code == 202, upload.text
        run = await wait_until_finished(api, admin, upload.json()["id"])
        assert run["rows_failed"] == 2, run

        body = json.dumps(event("payment_intent.succeeded", None)).encode()
        signature = "t=" + str(int(START.timestamp())) + ",v1=" + secrets.token_hex(32)
        webhook = await client.post(
            "/v1/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert webhook.status_code == 400
        tokens.append(signature)
    captured = capsys.readouterr().err

    lines = captured.splitlines()
    assert len(lines) > 20
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
    messages = {p["message"] for p in parsed}
    assert "the schedule runs in this process" in messages  # startup logged too
    assert any(p.get("path") == "/v1/webhooks/stripe" and p["status"] == 400 for p in parsed)

    never = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "JWT secret": JWT_SECRET,
        "link secret": LINK_SECRET,
        "Stripe key": STRIPE_KEY,
        "webhook secret": WEBHOOK_SECRET,
        "card number": CARD,
        "card digits": CARD.replace(" ", ""),
        "user's email": EMAIL,
        "admin's email": "admin@alpha.example",
        "full name": FULL_NAME,
        "debtor's first name": DEBTOR_FIRST,
        "debtor's last name": DEBTOR_LAST,
        "debtor's email": DEBTOR_EMAIL,
        "debtor's phone": DEBTOR_PHONE,
        "debtor's street": DEBTOR_STREET,
    }
    never.update({f"token {n}": token for n, token in enumerate(tokens)})
    leaked = {what for what, value in never.items() if value in captured}
    assert leaked == set(), [line for line in lines if any(never[w] in line for w in leaked)][:5]
