"""Redis adapters: counters shared by every process (rate limits; later idempotency)."""
