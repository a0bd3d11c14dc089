"""A debtor's contact data: the rules it follows whichever way it comes in.

The debtor API (:mod:`debtflow_core.use_cases.debtors`) and placement files
(:mod:`debtflow_core.placement`) check phones, emails, countries, states and postal codes
with these same functions, so neither stores what the other refuses nor stores a value
otherwise. Each returns the value as it is kept (trimmed, codes in upper case, emails in
lower case) or raises
:class:`~debtflow_core.errors.ValidationFailed` naming ``field``.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import date

from debtflow_core.domain.debtor import PostalAddress
from debtflow_core.errors import ValidationFailed
from debtflow_core.validation import optional_text, refuse_nul, require_text

MAX_CONTACTS = 10
"""The most phones, and the most emails, one debtor has: more than any household needs, and
a bound on what every read of the debtor and every audit entry of it carries."""


def at_most_max_contacts(values: tuple[object, ...], *, field: str) -> None:
    """Refuse more than :data:`MAX_CONTACTS` phones or emails (the HTTP body's schema bounds
    them too; this holds for the core's other callers and for placement files)."""
    if len(values) > MAX_CONTACTS:
        raise ValidationFailed(f"a debtor has at most {MAX_CONTACTS}", field=field)


MAX_TEXT = 200
"""The longest address line or city, in characters."""
MAX_POSTAL_CODE = 10
MAX_PHONE = 40
MAX_EMAIL = 254
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

US_STATES = frozenset(
    [
        *("AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID"),
        *("IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO"),
        *("MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA"),
        *("RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY"),
        # Territories, then the military's "states" (Americas, Europe, Pacific).
        *("AS", "GU", "MP", "PR", "VI", "UM", "AA", "AE", "AP"),
    ]
)
"""The US states, DC, the territories and the military codes, by their USPS codes."""

_PHONE = re.compile(r"\+?(?:[ ().\-]*\d){7,15}[ ().\-]*")
# Deliberately loose: the mailbox is the final judge; this refuses what is surely wrong.
_EMAIL = re.compile(r"[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+")
_US_ZIP = re.compile(r"\d{5}(-\d{4})?")
_MAX_TIME_ZONE = 64  # IANA names are at most 30-odd characters

PHONE_REASON = "must have 7 to 15 digits (+, spaces, dashes, dots and parentheses may go between)"
EMAIL_REASON = "must look like name@example.com"
COUNTRY_REASON = "must be a two-letter ISO 3166 country code"
STATE_REASON = "must be a two-letter state code"
US_STATE_REASON = "is not a US state or territory code"
US_ZIP_REASON = "must be a US ZIP code: 12345 or 12345-6789"


def phone_number(number: str, *, field: str) -> str:
    """``number`` trimmed: 7 to 15 digits, optionally after a ``+``, with spaces, dashes,
    dots or parentheses between them, at most :data:`MAX_PHONE` characters in all."""
    number = number.strip()
    if len(number) > MAX_PHONE or not _PHONE.fullmatch(number):
        raise ValidationFailed(PHONE_REASON, field=field)
    return number


def email_address(email: str, *, field: str) -> str:
    """``email`` trimmed and in lower case: ``name@domain.tld`` without spaces, at most 254
    characters. One address is one value whatever case it came in, so that the debtor API
    and placement files store it alike and a list keeps it once."""
    email = email.strip()
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        raise ValidationFailed(EMAIL_REASON, field=field)
    return email.lower()


def country_code(code: str, *, field: str) -> str:
    """``code`` as two upper-case ASCII letters (an ISO 3166 alpha-2 code, ``us`` → ``US``)."""
    code = code.strip().upper()
    if not (len(code) == 2 and code.isalpha() and code.isascii()):
        raise ValidationFailed(COUNTRY_REASON, field=field)
    return code


def state_code(state: str, *, country: str, field: str) -> str:
    """``state`` in upper case: at most two characters and, in the US, one of
    :data:`US_STATES`."""
    state = refuse_nul(state, field=field).strip().upper()
    if not state or len(state) > 2:
        raise ValidationFailed(STATE_REASON, field=field)
    if country == "US" and state not in US_STATES:
        raise ValidationFailed(US_STATE_REASON, field=field)
    return state


def postal_code(code: str, *, country: str, field: str) -> str:
    """``code`` trimmed: at most :data:`MAX_POSTAL_CODE` characters and, in the US, a ZIP
    code (``12345`` or ``12345-6789``)."""
    code = require_text(code, field=field, max_length=MAX_POSTAL_CODE)
    if country == "US" and not _US_ZIP.fullmatch(code):
        raise ValidationFailed(US_ZIP_REASON, field=field)
    return code


@functools.cache
def _time_zones() -> frozenset[str]:
    # Read from the system's or the tzdata package's zone files once, not per request.
    # "localtime" is the server's own zone and "Factory" a placeholder: neither is a place.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def time_zone(name: str, *, field: str) -> str:
    """``name`` trimmed: an IANA time zone name such as ``America/Chicago``."""
    name = name.strip()
    if len(name) > _MAX_TIME_ZONE or name not in _time_zones():
        raise ValidationFailed("must be an IANA time zone name like America/Chicago", field=field)
    return name


def birth_date(born: date, *, today: date, field: str) -> date:
    """``born`` if it is a plausible date of birth: not after ``today`` and not before
    :data:`EARLIEST_BIRTH_DATE`."""
    if born > today:
        raise ValidationFailed("must not be in the future", field=field)
    if born < EARLIEST_BIRTH_DATE:
        raise ValidationFailed(
            f"must be on or after {EARLIEST_BIRTH_DATE.isoformat()}", field=field
        )
    return born


def postal_address(address: PostalAddress, *, field: str = "address") -> PostalAddress:
    """``address`` checked part by part (``address.state``…): line 1 and city non-blank
    and at most :data:`MAX_TEXT` characters, line 2 likewise but optional, the country, the
    state and the postal code as above (the US ones by US rules), and the time zone, when
    given, an IANA name."""
    country = country_code(address.country, field=f"{field}.country")
    zone = address.time_zone
    return PostalAddress(
        line1=require_text(address.line1, field=f"{field}.line1", max_length=MAX_TEXT),
        line2=optional_text(address.line2, field=f"{field}.line2", max_length=MAX_TEXT),
        city=require_text(address.city, field=f"{field}.city", max_length=MAX_TEXT),
        state=state_code(address.state, country=country, field=f"{field}.state"),
        postal_code=postal_code(address.postal_code, country=country, field=f"{field}.postal_code"),
        country=country,
        time_zone=None if zone is None else time_zone(zone, field=f"{field}.time_zone"),
    )
