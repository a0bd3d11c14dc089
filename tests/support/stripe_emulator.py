"""A small Stripe API on 127.0.0.1, so that tests cross real HTTP through the real SDK.

It serves the calls the Stripe gateway makes, ``POST /v1/payment_intents``,
``GET /v1/payment_intents/{id}`` and ``POST /v1/refunds``, with Stripe's JSON shapes, status
codes and error bodies. Like Stripe
it checks the secret key, decodes the SDK's form bodies (``metadata[a]=b``) and keeps
idempotency: a repeated ``Idempotency-Key`` replays the first answer with
``Idempotent-Replayed: true``, and the key with other parameters is a 400
``idempotency_error``. Payment methods behave like Stripe's test payment methods
(:data:`OUTCOMES`). Tests break it on purpose (``fail_next``, ``hang``), ask
``performed(key)`` how often a request was really carried out, and end a PaymentIntent left
processing as its bank would (``clear``).

What happens to refunds outside the API is the test's to say: one made at the Dashboard
(``refund_at_dashboard``), one the debtor's bank sends back (``fail_refund``). Every refund
made and every one that fails puts in ``events`` the webhook event Stripe would send
(``charge.refunded``, ``refund.failed``), shaped as Stripe's API version 2022-11-15 and later
shape them; nothing is sent: the test delivers them, signed, in the order it wants. Their
``created`` comes from ``clock`` (the real time unless the test gives its own).

Only what the gateway needs is there: a PaymentIntent is always created and confirmed at
once, whatever ``confirm`` says; the tests check separately what the gateway sends.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import pytest

API_KEY = "sk_test_emulator"

OUTCOMES: dict[str, str | tuple[str, str, str]] = {
    "pm_card_visa": "succeeded",
    "pm_card_authenticationRequired": "requires_action",
    "pm_card_processing": "processing",
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
}
"""What confirming a PaymentIntent does with each payment method: the status it reaches,
or a card error as (code, decline_code, message). ``pm_card_processing`` is no Stripe test
method but the sandbox gateway's, for a payment left processing; any other does not exist."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Received:
    """A request as it arrived, before any switch or check."""

    path: str
    idempotency_key: str | None
    params: dict[str, Any]


class StripeEmulator:
    """One Stripe account, listening on a free port from ``with`` until the block ends."""

    api_key = API_KEY

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.received: list[Received] = []
        self.events: list[dict[str, Any]] = []
        self._clock = clock
        self._refunds: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._failures: list[int] = []
        self._delay = 0.0
        self._first: dict[str, tuple[dict[str, Any], Answer]] = {}
        self._performed: Counter[str] = Counter()
        self._intents: dict[str, dict[str, Any]] = {}
        self._refunded: Counter[str] = Counter()
        self._server = _Server(self)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StripeEmulator:
        # A short poll interval: stopping waits for the serving loop to notice.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()  # lets a hanging answer go at once
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with ``status``, as a failing load balancer in front
        of Stripe would: nothing is carried out or remembered, so the key may be used again."""
        with self._lock:
            self._failures.extend([status] * n)

    def hang(self, seconds: float) -> None:
        """Carry out the next request but answer it ``seconds`` late: a client that times out
        meanwhile cannot know that it happened."""
        with self._lock:
            self._delay = seconds

    def performed(self, idempotency_key: str) -> int:
        """How many times a request under this key was carried out; replays do not count."""
        with self._lock:
            return self._performed[idempotency_key]

    def clear(self, intent_id: str, *, declined_by: str | None = None) -> None:
        """The bank's answer to a PaymentIntent left processing: it succeeds, or, declined
        like the payment method ``declined_by`` of :data:`OUTCOMES`, it goes back to
        ``requires_payment_method`` with the card error as its ``last_payment_error``, as
        Stripe's do. Nobody is told: a webhook is the test's to send."""
        with self._lock:
            intent = self._intents[intent_id]
            assert intent["status"] == "processing", intent["status"]
            if declined_by is None:
                intent.update(status="succeeded", amount_received=intent["amount"])
                return
            code, decline_code, message = OUTCOMES[declined_by]
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
            }

    def refund_at_dashboard(self, intent_id: str, amount: int) -> dict[str, Any]:
        """Refund ``amount`` of a PaymentIntent as someone at Stripe's Dashboard would:
        without metadata or idempotency key. The refund, as Stripe gives it."""
        with self._lock:
            answer = self._refund(self._intents.get(intent_id), amount, metadata={})
        assert answer.status == 200, answer.body
        return answer.body

    def fail_refund(self, refund_id: str) -> None:
        """The debtor's bank sends a refund back (a closed card, say): it becomes
        ``failed``, its amount is no longer refunded on the charge, and Stripe sends
        ``refund.failed``."""
        with self._lock:
            refund = self._refunds[refund_id]
            assert refund["status"] == "succeeded", refund["status"]
            refund.update(status="failed", failure_reason="expired_or_canceled_card")
            self._refunded[refund["payment_intent"]] -= refund["amount"]
            self._announce("refund.failed", dict(refund))

    def retrieve(self, path: str, *, authorization: str | None) -> Answer:
        """``GET``: a PaymentIntent as it stands now."""
        with self._lock:
            self.received.append(Received(path, None, {}))
            if self._failures:
                return _failure(self._failures.pop(0))
            if authorization != f"Bearer {self.api_key}":
                return _error(401, "invalid_request_error", "Invalid API Key provided.")
            prefix = "/v1/payment_intents/"
            intent = (
                self._intents.get(path.removeprefix(prefix)) if path.startswith(prefix) else None
            )
            if intent is None:
                return _error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{path.removeprefix(prefix)}'",
                    code="resource_missing",
                )
            return Answer(200, dict(intent))

    def answer(
        self, path: str, *, authorization: str | None, idempotency_key: str | None, form: str
    ) -> Answer:
        params = _decode_form(form)
        with self._lock:
            self.received.append(Received(path, idempotency_key, params))
            if self._failures:
                return _failure(self._failures.pop(0))
            delay, self._delay = self._delay, 0.0
            answer = self._carry_out(path, authorization, idempotency_key, params)
        if delay:
            self._stopping.wait(delay)
        return answer

    def _carry_out(
        self,
        path: str,
        authorization: str | None,
        idempotency_key: str | None,
        params: dict[str, Any],
    ) -> Answer:
        if authorization != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided.")
        if idempotency_key is not None and len(idempotency_key) > 255:
            return _error(
                400,
                "invalid_request_error",
                "Idempotency keys can be at most 255 characters long.",
            )
        if idempotency_key in self._first:
            first_params, first = self._first[idempotency_key]
            if params != first_params:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            return replace(first, replayed=True)
        if path == "/v1/payment_intents":
            answer = self._create_payment_intent(params)
        elif path == "/v1/refunds":
            answer = self._create_refund(params)
        else:
            return _error(404, "invalid_request_error", f"Unrecognized request URL (POST: {path})")
        # Like Stripe, keep only answers of requests it began to carry out: a request refused
        # as invalid may be corrected and sent again under the same key.
        if idempotency_key is not None and answer.status in (200, 402):
            self._first[idempotency_key] = (params, answer)
            self._performed[idempotency_key] += 1
        return answer

    def _create_payment_intent(self, params: dict[str, Any]) -> Answer:
        method = params.get("payment_method", "")
        outcome = OUTCOMES.get(method)
        if outcome is None:
            return _error(
                400,
                "invalid_request_error",
                f"No such PaymentMethod: '{method}'",
                code="resource_missing",
                param="payment_method",
            )
        amount = int(params["amount"])
        intent: dict[str, Any] = {
            "id": _id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount if outcome == "succeeded" else 0,
            "currency": params["currency"].lower(),
            "status": outcome if isinstance(outcome, str) else "requires_payment_method",
            "payment_method": method,
            "payment_method_types": params.get("payment_method_types", ["card"]),
            "capture_method": "automatic",
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
            "latest_charge": None if outcome == "requires_action" else _id("ch"),
            "last_payment_error": None,
            "next_action": None,
            "created": int(self._clock()),
            "livemode": False,
        }
        if outcome == "requires_action":
            intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
        self._intents[intent["id"]] = intent
        if isinstance(outcome, str):
            return Answer(200, intent)
        code, decline_code, message = outcome
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": intent["latest_charge"],
            "payment_method": {"id": method, "object": "payment_method"},
        }
        intent["last_payment_error"] = error
        return Answer(402, {"error": {**error, "payment_intent": intent}})

    def _create_refund(self, params: dict[str, Any]) -> Answer:
        intent = self._intents.get(params.get("payment_intent", ""))
        amount = params.get("amount")
        return self._refund(
            intent, None if amount is None else int(amount), params.get("metadata", {})
        )

    def _refund(
        self, intent: dict[str, Any] | None, amount: int | None, metadata: dict[str, Any]
    ) -> Answer:
        if intent is None or intent["status"] != "succeeded":
            return _error(
                400,
                "invalid_request_error",
                "This PaymentIntent does not have a successful charge to refund.",
                code="resource_missing" if intent is None else "charge_not_refundable",
                param="payment_intent",
            )
        left = intent["amount"] - self._refunded[intent["id"]]
        amount = left if amount is None else amount
        if left == 0:
            return _error(
                400,
                "invalid_request_error",
                f"Charge {intent['latest_charge']} has already been refunded.",
                code="charge_already_refunded",
            )
        if amount > left:
            return _error(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
                param="amount",
            )
        self._refunded[intent["id"]] += amount
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "charge": intent["latest_charge"],
            "status": "succeeded",
            "failure_reason": None,
            "metadata": metadata,
            "created": int(self._clock()),
        }
        self._refunds[refund["id"]] = refund
        self._announce("charge.refunded", self._charge(intent))
        return Answer(200, dict(refund))

    def _charge(self, intent: dict[str, Any]) -> dict[str, Any]:
        """The PaymentIntent's charge as it stands: its refunded total, not its refunds."""
        refunded = self._refunded[intent["id"]]
        return {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": refunded,
            "refunded": refunded == intent["amount"],
            "payment_intent": intent["id"],
            "metadata": dict(intent["metadata"]),
        }

    def _announce(self, type_: str, obj: dict[str, Any]) -> None:
        self.events.append(
            {
                "id": _id("evt"),
                "object": "event",
                "type": type_,
                "created": int(self._clock()),
                "data": {"object": obj},
            }
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: StripeEmulator) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.emulator = emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its socket before a hanging answer went out.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        self._send(
            self.server.emulator.retrieve(path, authorization=self.headers.get("Authorization"))
        )

    def do_POST(self) -> None:
        form = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        answer = self.server.emulator.answer(
            self.path,
            authorization=self.headers.get("Authorization"),
            idempotency_key=self.headers.get("Idempotency-Key"),
            form=form,
        )
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", _id("req"))
        if answer.replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        """Silent: a failing test shows what it asserted, not an access log."""


def _decode_form(form: str) -> dict[str, Any]:
    """The SDK's form encoding back into nested values: ``metadata[a]=b`` becomes a dict,
    ``payment_method_types[0]=card`` a list. Scalars stay strings, as Stripe receives them."""
    decoded: dict[str, Any] = {}
    for name, value in parse_qsl(form, keep_blank_values=True):
        *parents, leaf = name.replace("]", "").split("[")
        node = decoded
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return _with_lists(decoded)


def _with_lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _with_lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def _error(status: int, type_: str, message: str, **fields: str) -> Answer:
    return Answer(status, {"error": {"type": type_, "message": message, **fields}})


def _failure(status: int) -> Answer:
    if status == 429:
        return _error(
            429,
            "invalid_request_error",
            "Too many requests hit the API too quickly.",
            code="rate_limit",
        )
    return _error(status, "api_error", "Something went wrong on Stripe's end.")


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@pytest.fixture
def stripe_emulator() -> Iterator[StripeEmulator]:
    """A Stripe emulator of the test's own, stopped when the test ends."""
    with StripeEmulator() as emulator:
        yield emulator
