from __future__ import annotations

from collections import Counter

from debtflow_core.ports.telemetry import Telemetry


class InMemoryTelemetry(Telemetry):
    """Counts what happened in plain counters, for embedders' tests to assert on.

    The keys are the label values the Prometheus adapter would use, in the same order,
    but for a delivery's newness: a bool here, ``new`` or ``duplicate`` there.
    """

    def __init__(self) -> None:
        self.payments: Counter[tuple[str, str]] = Counter()
        """(processor, status) -> payments."""
        self.collected: Counter[str] = Counter()
        """currency -> minor units collected."""
        self.replays: Counter[str] = Counter()
        self.conflicts: Counter[tuple[str, str]] = Counter()
        """(operation, reason) -> refused repeats."""
        self.import_rows: Counter[str] = Counter()
        """outcome (``created``, ``updated``, ``failed``) -> rows."""
        self.imports: list[tuple[str, float]] = []
        """(status, seconds) of each finished import run."""
        self.webhooks_received: Counter[tuple[str, bool]] = Counter()
        self.webhooks_applied: Counter[tuple[str, str]] = Counter()
        self.breaker_states: dict[str, str] = {}
        self.breaker_transitions: Counter[tuple[str, str]] = Counter()

    def payment_reached(self, processor: str, status: str, amount: int, currency: str) -> None:
        self.payments[processor, status] += 1
        if status == "completed":
            self.collected[currency] += amount

    def idempotent_replay(self, operation: str) -> None:
        self.replays[operation] += 1

    def idempotency_conflict(self, operation: str, reason: str) -> None:
        self.conflicts[operation, reason] += 1

    def import_finished(
        self, status: str, *, created: int, updated: int, failed: int, seconds: float
    ) -> None:
        self.import_rows.update(created=created, updated=updated, failed=failed)
        self.imports.append((status, seconds))

    def webhook_received(self, event_type: str, *, new: bool) -> None:
        self.webhooks_received[event_type, new] += 1

    def webhook_applied(self, event_type: str, outcome: str) -> None:
        self.webhooks_applied[event_type, outcome] += 1

    def breaker_changed(self, breaker: str, state: str) -> None:
        self.breaker_states[breaker] = state
        self.breaker_transitions[breaker, state] += 1
