"""Adapters for DebtFlow's ports, and the composition root that chooses among them."""
