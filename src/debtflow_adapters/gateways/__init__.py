"""Payment-gateway adapters that wrap another gateway (the circuit breaker)."""
