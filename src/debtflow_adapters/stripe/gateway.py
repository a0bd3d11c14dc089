from __future__ import annotations

import hashlib
import logging

import stripe

from debtflow_core.errors import GatewayRefused, GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
    RefundResult,
)

log = logging.getLogger("debtflow.stripe")

NOT_FINAL = frozenset({"processing", "requires_capture"})
"""PaymentIntent statuses that end later without the debtor, announced by webhook:
``processing`` waits for the bank; ``requires_capture`` holds an authorisation until it is
captured or lapses into ``canceled``. We never ask for manual capture, so the second should
not occur; if it did, the money would be held, neither taken nor released."""

_NO_ANSWER = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


class StripeGateway(PaymentGateway):
    """Charges cards with PaymentIntents, created and confirmed in one call, and refunds them.

    The caller's idempotency key is sent as Stripe's ``Idempotency-Key``: Stripe answers a
    repeated key (for 24 hours) with its stored first answer and never acts twice.

    A charge is SUCCEEDED when the PaymentIntent is ``succeeded``, PROCESSING while it is
    in a :data:`NOT_FINAL` status, and DECLINED otherwise, with the card error's
    ``decline_code`` (else its ``code``); :meth:`look_up` retrieves the PaymentIntent and
    answers alike. A charge Stripe refuses as invalid (a payment
    method that does not exist, an amount below Stripe's minimum) is DECLINED too, with
    the error's code: Stripe answered, nothing was charged, and asking again cannot help.

    Raises GatewayUnavailable with ``request_sent=True`` when Stripe gives no answer: a
    connection error or timeout, a 5xx, a 429, or an idempotency error (another request
    under this key, which is our bug). A rejected API key or permission raises it with
    ``request_sent=False``: Stripe did nothing, and the payment should not wait to be
    charged whenever someone fixes the configuration. A refund refused as invalid (already
    refunded, more than is left), or a lookup of a PaymentIntent Stripe does not know,
    raises its subclass GatewayRefused: Stripe did nothing,
    and answered, so a circuit breaker does not count it against Stripe, as it does a
    rejected key (every call would fail alike).

    Its own log lines carry neither the API key nor Stripe's messages, which may quote
    payment methods. (The SDK's ``stripe`` logger writes request bodies at DEBUG.)
    """

    def __init__(
        self, api_key: str, *, api_base: str | None = None, timeout_seconds: float = 30.0
    ) -> None:
        """``api_base`` replaces ``https://api.stripe.com`` (an emulator, a proxy);
        ``timeout_seconds`` bounds each phase of a call (connecting, sending, reading, and
        waiting for a pooled connection) on its own."""
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            # Retrying inside the SDK would hold the caller for several timeouts and hide
            # each failure from the circuit breaker. An unanswered call is safe as it is:
            # the core leaves the payment pending and asks again under the same key.
            max_network_retries=0,
            http_client=self._http,
        )

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        try:
            intent = await self._client.v1.payment_intents.create_async(
                {
                    "amount": request.amount,
                    "currency": request.currency.lower(),
                    "payment_method": request.payment_method,
                    # Cards only: with the Dashboard's methods, which include redirects,
                    # Stripe refuses to confirm without a return_url.
                    "payment_method_types": ["card"],
                    "confirm": True,
                    "description": request.description,
                    # Stripe repeats the metadata in its webhooks: our payment id lets an
                    # event find its payment even when this answer never reaches us; the
                    # key finds the PaymentIntent of a payment in the Dashboard.
                    "metadata": _charge_metadata(request),
                },
                {"idempotency_key": _stripe_key(request.idempotency_key)},
            )
        except stripe.CardError as error:
            return _declined(error)
        except stripe.InvalidRequestError as error:
            log.warning("Stripe refused a charge as invalid", extra=_fields("charge", error))
            return _declined(error)
        except stripe.StripeError as error:
            raise _unavailable("charge", error) from error
        return _result(intent)

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(lookup.reference)
        except stripe.StripeError as error:
            raise _unavailable("lookup", error) from error
        return _result(intent)

    async def refund(self, request: RefundRequest) -> RefundResult:
        try:
            refund = await self._client.v1.refunds.create_async(
                {
                    "payment_intent": request.charge_reference,
                    "amount": request.amount,
                    "metadata": {"idempotency_key": request.idempotency_key},
                },
                {"idempotency_key": _stripe_key(request.idempotency_key)},
            )
        except stripe.StripeError as error:
            raise _unavailable("refund", error) from error
        return RefundResult(reference=refund.id)

    async def aclose(self) -> None:
        """Close the pooled connections; call it once, when the application stops."""
        await self._http.close_async()


def _stripe_key(key: str) -> str:
    """Stripe takes idempotency keys of up to 255 characters, and HTTP headers only ASCII;
    ours (an agency id, up to 255 printable characters of the client's and a row's id) may
    be neither, and is then sent as its SHA-256, the same for every call."""
    if len(key) <= 255 and key.isascii():
        return key
    return f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _result(intent: stripe.PaymentIntent) -> ChargeResult:
    if intent.status == "succeeded":
        return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=intent.id)
    if intent.status in NOT_FINAL:
        return ChargeResult(outcome=ChargeOutcome.PROCESSING, reference=intent.id)
    if intent.status == "requires_action":
        # The card asks for 3-D Secure, which a charge made on the server cannot show
        # the debtor; Stripe declines such charges made off-session with this code.
        return ChargeResult(
            outcome=ChargeOutcome.DECLINED,
            reference=intent.id,
            decline_code="authentication_required",
            message="The card requires authentication, which this payment cannot ask for.",
        )
    # Confirmed at creation, a PaymentIntent reaches no other status but by failing (its
    # bank refused a payment left processing: requires_payment_method, with the error) or
    # by being canceled: nothing was taken.
    # Stripe leaves out an error's fields that do not apply (a decline code but for cards).
    error = intent.last_payment_error
    code = getattr(error, "decline_code", None) or getattr(error, "code", None)
    return ChargeResult(
        outcome=ChargeOutcome.DECLINED,
        reference=intent.id,
        decline_code=code or intent.status,
        message=getattr(error, "message", None) or f"Stripe left the payment {intent.status}.",
    )


def _declined(error: stripe.CardError | stripe.InvalidRequestError) -> ChargeResult:
    """Stripe's refusal as an answer. A card error carries the PaymentIntent it left behind;
    a request refused as invalid made none, and is found in Stripe's logs by its request id."""
    details = error.error
    intent = details.payment_intent if details is not None else None
    decline_code = details.decline_code if details is not None else None
    return ChargeResult(
        outcome=ChargeOutcome.DECLINED,
        reference=intent.id if intent is not None else (error.request_id or ""),
        decline_code=decline_code or error.code,
        message=error.user_message,
    )


def _unavailable(call: str, error: stripe.StripeError) -> GatewayUnavailable:
    fields = _fields(call, error)
    reason = error.code or type(error).__name__
    if isinstance(error, stripe.InvalidRequestError):
        log.warning("Stripe refused the %s as invalid", call, extra=fields)
        return GatewayRefused(f"the payment gateway refused the {call} ({reason})")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        log.error("Stripe refused our API key; check the Stripe settings", extra=fields)
        return GatewayUnavailable(
            f"the payment gateway refused the {call} ({reason})", request_sent=False
        )
    level = logging.WARNING if isinstance(error, _NO_ANSWER) else logging.ERROR
    log.log(level, "Stripe gave no answer to the %s", call, extra=fields)
    return GatewayUnavailable(f"the payment gateway gave no answer to the {call}")


def _fields(call: str, error: stripe.StripeError) -> dict[str, object]:
    """What identifies a failure in Stripe's logs, without Stripe's message: that may quote
    the request (a payment method) or part of the key."""
    return {
        "call": call,
        "error": type(error).__name__,
        "http_status": error.http_status,
        "code": error.code,
        "stripe_request_id": error.request_id,
    }


def _charge_metadata(request: ChargeRequest) -> dict[str, str]:
    metadata = {"idempotency_key": request.idempotency_key}
    if request.payment_id is not None:
        metadata["debtflow_payment_id"] = str(request.payment_id)
    return metadata
