"""A task's arguments as its message carries them (strings and numbers), decoded.

A message whose argument cannot be decoded (an id that is no UUID, a count that is no whole
number) is a poison message: every run of it decodes the same. So these raise
:class:`~debtflow_core.errors.ValidationFailed` naming the argument, which the retry policy
(:class:`~debtflow_adapters.taskiq.retries.RetryMiddleware`) never retries: the job fails at
once, logged as failed for good.
"""

from __future__ import annotations

import uuid

from debtflow_core.errors import ValidationFailed

_SHOWN = 60
"""How much of a bad value an error quotes: a poison message may carry anything."""


def id_argument(name: str, value: object) -> uuid.UUID:
    """The argument ``name``, a UUID in its string form."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _malformed(name, value, "a UUID")


def count_argument(name: str, value: object) -> int:
    """The argument ``name``, a whole number of at least 1."""
    if type(value) is int and value >= 1:
        return value
    raise _malformed(name, value, "a whole number of at least 1")


def _malformed(name: str, value: object, expected: str) -> ValidationFailed:
    shown = repr(value)
    if len(shown) > _SHOWN:
        shown = f"{shown[:_SHOWN]}… ({len(shown)} characters)"
    return ValidationFailed(f"the task's {name} must be {expected}, not {shown}", field=name)
