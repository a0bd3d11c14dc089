"""Stripe adapters: the payment gateway on Stripe's API, through the official SDK."""
