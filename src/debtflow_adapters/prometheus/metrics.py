"""Every metric DebtFlow exports, declared once per process on prometheus-client's
registry (the library's way: metrics are process-global).

With ``PROMETHEUS_MULTIPROC_DIR`` set before this module is first imported, each process
writes its values to files there and a scrape adds up every process's (see
:mod:`debtflow_adapters.prometheus.exposition`); ``debtflow serve --workers N`` and
``debtflow worker`` set it up themselves. Names follow Prometheus' conventions: the
``debtflow_`` prefix, ``_total`` on counters, base units (seconds).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched: never the raw path (unbounded)."""

# Fast API calls sit between 1 ms and 1 s; the tail up to 10 s catches the slow ones.
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_TASK_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
_IMPORT_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)

HTTP_REQUESTS = Counter(
    "debtflow_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "debtflow_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, in seconds.",
    ["method", "route", "status"],
    buckets=_REQUEST_BUCKETS,
)

TASKS_STARTED = Counter(
    "debtflow_tasks_started", "Background tasks a worker started, by task name.", ["task"]
)
TASKS_SUCCEEDED = Counter(
    "debtflow_tasks_succeeded", "Background tasks that finished without an error.", ["task"]
)
TASKS_FAILED = Counter(
    "debtflow_tasks_failed", "Background task runs that raised an error.", ["task"]
)
TASKS_RETRIED = Counter(
    "debtflow_tasks_retried", "Failed background tasks scheduled to run again.", ["task"]
)
TASK_DURATION = Histogram(
    "debtflow_task_duration_seconds",
    "How long a background task ran, in seconds, by task name.",
    ["task"],
    buckets=_TASK_BUCKETS,
)

PAYMENTS = Counter(
    "debtflow_payments",
    "Payments reaching a status (pending, completed, failed), by processor kind.",
    ["processor", "status"],
)
COLLECTED = Counter(
    "debtflow_collected_minor_units",
    "Amount collected by completed payments, in minor units of the currency (cents for "
    "USD): never add two currencies together.",
    ["currency"],
)
IDEMPOTENT_REPLAYS = Counter(
    "debtflow_idempotent_replays",
    "Repeated idempotency keys answered with the stored response, by operation.",
    ["operation"],
)
IDEMPOTENCY_CONFLICTS = Counter(
    "debtflow_idempotency_conflicts",
    "Repeated idempotency keys refused: in_flight (409, the first request still runs) or "
    "different_request (the key was used for another request).",
    ["operation", "reason"],
)
IMPORT_ROWS = Counter(
    "debtflow_import_rows",
    "Placement rows of finished import runs, by outcome (created, updated, failed).",
    ["outcome"],
)
IMPORT_DURATION = Histogram(
    "debtflow_import_duration_seconds",
    "How long a placement import run took from start to finish, in seconds, by status.",
    ["status"],
    buckets=_IMPORT_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "debtflow_webhook_deliveries",
    "Verified gateway webhook deliveries, by event type and outcome (new, duplicate).",
    ["type", "outcome"],
)
WEBHOOK_EVENTS = Counter(
    "debtflow_webhook_events",
    "Gateway events applied, by event type and outcome (completed, failed, refunded, "
    "refund_failed, ignored, unknown_payment).",
    ["type", "outcome"],
)
BREAKER_STATE = Gauge(
    "debtflow_circuit_breaker_state",
    "A gateway circuit breaker's state: 0 closed, 1 half-opened, 2 opened (the highest "
    "of the live processes').",
    ["breaker"],
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS = Counter(
    "debtflow_circuit_breaker_transitions",
    "Circuit breaker state changes, by breaker and the state it went to.",
    ["breaker", "state"],
)

BREAKER_STATE_VALUES = {"closed": 0, "half-opened": 1, "opened": 2}
