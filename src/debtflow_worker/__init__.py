"""DebtFlow's background worker and scheduler (Taskiq). Imports adapters and core, never the HTTP API."""
