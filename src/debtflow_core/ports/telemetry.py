from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    """Tells operators what the business did: each method records one thing that happened.

    Calls are cheap, synchronous and never raise: a metric must not fail a payment. They
    are made after the fact they report is committed (a rolled-back payment is not
    counted). Label values are bounded sets (statuses, processor kinds, event types,
    currencies), never ids.
    """

    def payment_reached(self, processor: str, status: str, amount: int, currency: str) -> None:
        """A payment through a processor of kind ``processor`` reached ``status``
        (``pending``, ``completed`` or ``failed``); ``amount`` is in minor units of
        ``currency``, and counts as collected when the status is ``completed``."""
        ...

    def idempotent_replay(self, operation: str) -> None:
        """A repeated idempotency key got the stored answer of ``operation``
        (``payment`` or ``refund``)."""
        ...

    def idempotency_conflict(self, operation: str, reason: str) -> None:
        """A repeated idempotency key was refused: ``in_flight`` (the first request still
        runs, a 409) or ``different_request`` (another request under the same key)."""
        ...

    def import_finished(
        self, status: str, *, created: int, updated: int, failed: int, seconds: float
    ) -> None:
        """A placement import run finished with ``status``, its row counts and how long it
        ran, in seconds."""
        ...

    def webhook_received(self, event_type: str, *, new: bool) -> None:
        """A verified gateway webhook delivery arrived: a new event or a duplicate."""
        ...

    def webhook_applied(self, event_type: str, outcome: str) -> None:
        """A stored gateway event was applied, with ``outcome`` (``completed``,
        ``failed``, ``refunded``, ``ignored``, ``unknown_payment``)."""
        ...

    def breaker_changed(self, breaker: str, state: str) -> None:
        """The circuit breaker ``breaker`` went to ``state`` (``closed``, ``opened``,
        ``half-opened``)."""
        ...
