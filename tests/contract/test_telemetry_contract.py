"""The Telemetry contract, against both adapters: every event is recorded under its labels,
counted once per call, and money is counted as collected only when a payment completes.

Each adapter comes with a reader of what it recorded; the Prometheus adapter's metrics
are process-global, so its reader gives what grew since the test started."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_adapters.prometheus.telemetry import PrometheusTelemetry
from debtflow_core.ports.telemetry import Telemetry


@dataclass
class Recorded:
    telemetry: Telemetry
    payments: Callable[[str, str], float]
    collected: Callable[[str], float]
    replays: Callable[[str], float]
    conflicts: Callable[[str, str], float]
    import_rows: Callable[[str], float]
    imports: Callable[[str], float]
    """How many runs finished with this status."""
    import_seconds: Callable[[str], float]
    """Their seconds, summed."""
    received: Callable[[str, bool], float]
    applied: Callable[[str, str], float]
    breaker_state: Callable[[str], str]
    transitions: Callable[[str, str], float]


def in_memory() -> Recorded:
    t = InMemoryTelemetry()
    return Recorded(
        telemetry=t,
        payments=lambda processor, status: t.payments[processor, status],
        collected=lambda currency: t.collected[currency],
        replays=lambda operation: t.replays[operation],
        conflicts=lambda operation, reason: t.conflicts[operation, reason],
        import_rows=lambda outcome: t.import_rows[outcome],
        imports=lambda status: sum(1 for s, _ in t.imports if s == status),
        import_seconds=lambda status: sum(seconds for s, seconds in t.imports if s == status),
        received=lambda type_, new: t.webhooks_received[type_, new],
        applied=lambda type_, outcome: t.webhooks_applied[type_, outcome],
        breaker_state=lambda breaker: t.breaker_states[breaker],
        transitions=lambda breaker, state: t.breaker_transitions[breaker, state],
    )


def prometheus() -> Recorded:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    start: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def grown(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return value(name, **labels) - start[key]

    def reader(name: str, *label_names: str) -> Callable[..., float]:
        def read(*values: object) -> float:
            labels = dict(zip(label_names, map(_label, values), strict=True))
            return grown(name, **labels)

        return read

    names = {
        "payments": ("debtflow_payments_total", "processor", "status"),
        "collected": ("debtflow_collected_minor_units_total", "currency"),
        "replays": ("debtflow_idempotent_replays_total", "operation"),
        "conflicts": ("debtflow_idempotency_conflicts_total", "operation", "reason"),
        "import_rows": ("debtflow_import_rows_total", "outcome"),
        "imports": ("debtflow_import_duration_seconds_count", "status"),
        "import_seconds": ("debtflow_import_duration_seconds_sum", "status"),
        "received": ("debtflow_webhook_deliveries_total", "type", "outcome"),
        "applied": ("debtflow_webhook_events_total", "type", "outcome"),
        "transitions": ("debtflow_circuit_breaker_transitions_total", "breaker", "state"),
    }
    readers = {field: reader(*spec) for field, spec in names.items()}
    # Every series this test reads, as it stands before the test.
    for field, (name, *label_names) in names.items():
        for values in _READ[field]:
            labels = dict(zip(label_names, map(_label, values), strict=True))
            start[(name, tuple(sorted(labels.items())))] = value(name, **labels)

    states = {0: "closed", 1: "half-opened", 2: "opened"}
    return Recorded(
        telemetry=PrometheusTelemetry(),
        breaker_state=lambda breaker: states[
            int(value("debtflow_circuit_breaker_state", breaker=breaker))
        ],
        **readers,
    )


def _label(value: object) -> str:
    if isinstance(value, bool):  # a webhook delivery: new or a duplicate
        return "new" if value else "duplicate"
    return str(value)


# The series the tests read, so the Prometheus reader can note where each one starts.
_READ: dict[str, list[tuple[object, ...]]] = {
    "payments": [("stripe", "completed"), ("stripe", "pending"), ("sandbox", "failed")],
    "collected": [("USD",), ("EUR",)],
    "replays": [("payment",), ("refund",)],
    "conflicts": [("payment", "in_flight"), ("refund", "different_request")],
    "import_rows": [("created",), ("updated",), ("failed",)],
    "imports": [("partially_failed",)],
    "import_seconds": [("partially_failed",)],
    "received": [("charge.refunded", True), ("charge.refunded", False)],
    "applied": [("charge.refunded", "refunded")],
    "transitions": [("stripe", "opened"), ("stripe", "half-opened"), ("stripe", "closed")],
}


@pytest.fixture(params=["memory", "prometheus"])
def recorded(request: pytest.FixtureRequest) -> Recorded:
    return in_memory() if request.param == "memory" else prometheus()


def test_payments_count_by_processor_and_status_and_only_completed_ones_collect(
    recorded: Recorded,
) -> None:
    t = recorded.telemetry
    t.payment_reached("stripe", "pending", 2_500, "USD")
    t.payment_reached("stripe", "completed", 2_500, "USD")
    t.payment_reached("stripe", "completed", 1_000, "EUR")
    t.payment_reached("sandbox", "failed", 9_999, "USD")

    assert recorded.payments("stripe", "completed") == 2
    assert recorded.payments("stripe", "pending") == 1
    assert recorded.payments("sandbox", "failed") == 1
    assert (recorded.collected("USD"), recorded.collected("EUR")) == (2_500, 1_000)


def test_replays_and_conflicts_count_by_operation(recorded: Recorded) -> None:
    t = recorded.telemetry
    t.idempotent_replay("payment")
    t.idempotent_replay("payment")
    t.idempotency_conflict("payment", "in_flight")
    t.idempotency_conflict("refund", "different_request")

    assert (recorded.replays("payment"), recorded.replays("refund")) == (2, 0)
    assert recorded.conflicts("payment", "in_flight") == 1
    assert recorded.conflicts("refund", "different_request") == 1


def test_an_import_counts_its_rows_by_outcome_and_its_duration(recorded: Recorded) -> None:
    recorded.telemetry.import_finished(
        "partially_failed", created=7, updated=2, failed=1, seconds=1.5
    )

    assert [recorded.import_rows(o) for o in ("created", "updated", "failed")] == [7, 2, 1]
    assert recorded.imports("partially_failed") == 1
    assert recorded.import_seconds("partially_failed") == 1.5


def test_webhooks_count_deliveries_and_applications(recorded: Recorded) -> None:
    t = recorded.telemetry
    t.webhook_received("charge.refunded", new=True)
    t.webhook_received("charge.refunded", new=False)
    t.webhook_received("charge.refunded", new=False)
    t.webhook_applied("charge.refunded", "refunded")

    assert recorded.received("charge.refunded", True) == 1
    assert recorded.received("charge.refunded", False) == 2
    assert recorded.applied("charge.refunded", "refunded") == 1


def test_a_breaker_keeps_its_last_state_and_counts_each_transition(recorded: Recorded) -> None:
    t = recorded.telemetry
    for state in ("opened", "half-opened", "opened", "half-opened", "closed"):
        t.breaker_changed("stripe", state)

    assert recorded.breaker_state("stripe") == "closed"
    assert recorded.transitions("stripe", "opened") == 2
    assert recorded.transitions("stripe", "half-opened") == 2
    assert recorded.transitions("stripe", "closed") == 1
