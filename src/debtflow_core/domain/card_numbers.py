"""Card numbers (PANs) must never reach DebtFlow: payments carry a gateway's reference to a
payment method (``pm_…``), never the card itself. This spots what looks like one."""

from __future__ import annotations

import re
from collections.abc import Iterable

# 13 to 19 digits as people write them: in one run, in groups of four (4-4-4-1..7), or as
# American Express does (4-6-5), with spaces, dashes or dots between groups. No digit may
# touch the number on either side, but anything else may: "pm_4242424242424242" holds one.
_CANDIDATE = re.compile(
    r"(?<!\d)(?:\d{13,19}|\d{4}([ .-])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ .-])\d{6}\2\d{5})(?!\d)"
)

# Identifiers whose digits could pass for a card number: UUIDs (8-4-4-4-12 hex groups, the
# last four of which may read as 4-4-4-1..7), and whole words of 24 or more hex digits (a
# hash, an object id, a UUID without its dashes). They are blanked out before the search.
_IDENTIFIER = re.compile(
    r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|(?<![0-9a-z])[0-9a-f]{24,}(?![0-9a-z])",
    re.IGNORECASE,
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """Whether ``text`` contains a 13 to 19 digit number that passes the Luhn check,
    outside an identifier."""
    return any(
        _luhn_valid(re.sub(r"[ .-]", "", match.group(0)))
        for match in _CANDIDATE.finditer(_IDENTIFIER.sub("_", text))
    )


def strings_in(value: object) -> Iterable[str]:
    """Every string inside a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)
