"""Money rules. Amounts are integers in minor units (cents for USD) beside an ISO-4217 code."""

from __future__ import annotations

import re

from debtflow_core.errors import ValidationFailed

_CURRENCY = re.compile(r"[A-Z]{3}")

MAX_AMOUNT = 10**12
"""The largest amount of one account, payment or promise, in minor units: ten billion
dollars in cents. Every store keeps amounts as signed 64-bit integers; this bound leaves
room to add up nine million of them (the reports' totals) without overflowing."""


def validate_currency(code: str, *, field: str = "currency") -> str:
    """Return ``code`` if it is shaped like an ISO-4217 code (three upper-case letters)."""
    if not _CURRENCY.fullmatch(code):
        raise ValidationFailed(f"{code!r} is not an ISO-4217 currency code", field=field)
    return code


def validate_balance(balance: int, *, field: str) -> int:
    """Return ``balance`` if it is a whole number of minor units within :data:`MAX_AMOUNT`
    either side of zero: below zero, a credit owed to the debtor (an overpayment)."""
    if isinstance(balance, bool) or not isinstance(balance, int):
        raise ValidationFailed("balances are whole numbers of minor units", field=field)
    if abs(balance) > MAX_AMOUNT:
        raise ValidationFailed(
            f"must be from -{MAX_AMOUNT} to {MAX_AMOUNT} minor units", field=field
        )
    return balance


def validate_amount(amount: int, *, field: str, allow_zero: bool = True) -> int:
    """Return ``amount`` if it is a non-negative (or positive) whole number of minor units,
    at most :data:`MAX_AMOUNT`."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed("amounts are whole numbers of minor units", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ValidationFailed(f"must be {bound} minor units", field=field)
    if amount > MAX_AMOUNT:
        raise ValidationFailed(f"must be at most {MAX_AMOUNT} minor units", field=field)
    return amount
