"""DebtFlow's HTTP API (Litestar). Imports adapters and core, never the worker."""
