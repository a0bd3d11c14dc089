"""Every DebtFlow task, one module per family. Importing this package declares them all on
taskiq's shared broker, where any broker (the worker's, or the in-process one of a server
without a broker) finds them by name."""

from debtflow_worker.tasks import exports, imports, maintenance, payments

__all__ = ["exports", "imports", "maintenance", "payments"]
