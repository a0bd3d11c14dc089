"""Adapters for security ports: password hashing with argon2."""
