from __future__ import annotations

from debtflow_adapters.prometheus import metrics
from debtflow_core.ports.telemetry import Telemetry


class PrometheusTelemetry(Telemetry):
    """Records the business's events in this process's Prometheus metrics (see
    :mod:`debtflow_adapters.prometheus.metrics` for their names and meaning)."""

    def payment_reached(self, processor: str, status: str, amount: int, currency: str) -> None:
        metrics.PAYMENTS.labels(processor, status).inc()
        if status == "completed":
            metrics.COLLECTED.labels(currency).inc(amount)

    def idempotent_replay(self, operation: str) -> None:
        metrics.IDEMPOTENT_REPLAYS.labels(operation).inc()

    def idempotency_conflict(self, operation: str, reason: str) -> None:
        metrics.IDEMPOTENCY_CONFLICTS.labels(operation, reason).inc()

    def import_finished(
        self, status: str, *, created: int, updated: int, failed: int, seconds: float
    ) -> None:
        metrics.IMPORT_ROWS.labels("created").inc(created)
        metrics.IMPORT_ROWS.labels("updated").inc(updated)
        metrics.IMPORT_ROWS.labels("failed").inc(failed)
        metrics.IMPORT_DURATION.labels(status).observe(seconds)

    def webhook_received(self, event_type: str, *, new: bool) -> None:
        metrics.WEBHOOK_DELIVERIES.labels(event_type, "new" if new else "duplicate").inc()

    def webhook_applied(self, event_type: str, outcome: str) -> None:
        metrics.WEBHOOK_EVENTS.labels(event_type, outcome).inc()

    def breaker_changed(self, breaker: str, state: str) -> None:
        metrics.BREAKER_STATE.labels(breaker).set(metrics.BREAKER_STATE_VALUES.get(state, 2))
        metrics.BREAKER_TRANSITIONS.labels(breaker, state).inc()
