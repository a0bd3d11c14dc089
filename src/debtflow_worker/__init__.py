"""DebtFlow's background worker and scheduler (Taskiq).

It imports adapters and core, never the HTTP API.
"""
