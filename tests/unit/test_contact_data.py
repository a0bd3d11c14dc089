"""The rules a debtor's contact data follows, whether it comes through the API or a file."""

from __future__ import annotations

from datetime import date

import pytest

from debtflow_core.contact_data import (
    birth_date,
    country_code,
    email_address,
    phone_number,
    postal_address,
    postal_code,
    state_code,
    time_zone,
)
from debtflow_core.domain.debtor import PostalAddress
from debtflow_core.errors import ValidationFailed

TODAY = date(2026, 1, 5)


def refused(check, *args, **kwargs) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        check(*args, field="f", **kwargs)
    assert caught.value.field == "f"
    return caught.value


@pytest.mark.parametrize(
    ("number", "kept"),
    [
        ("+15555550100", "+15555550100"),
        (" (512) 555-0101 ", "(512) 555-0101"),
        ("+1 512.555.0100", "+1 512.555.0100"),
        ("5550100", "5550100"),
        ("123456789012345", "123456789012345"),
    ],
)
def test_phone_numbers_have_7_to_15_digits_and_are_trimmed(number, kept):
    assert phone_number(number, field="f") == kept


@pytest.mark.parametrize(
    "number", ["abc", "", "   ", "555010", "1234567890123456", "555-0100 ext 2", "5" * 1_000_000]
)
def test_anything_else_is_not_a_phone_number(number):
    assert refused(phone_number, number).detail.startswith("must have 7 to 15 digits")


def test_a_phone_number_with_its_separators_is_at_most_40_characters():
    assert phone_number("(" * 33 + "5550100", field="f")
    refused(phone_number, "(" * 34 + "5550100")


def test_emails_look_like_an_address_and_are_kept_in_lower_case():
    assert email_address(" Ada@Example.com ", field="f") == "ada@example.com"
    for email in ["x", "a@b", "a b@c.d", "a@b@c.d", "a\x00@b.c", "", f"{'a' * 250}@b.co"]:
        assert refused(email_address, email).detail == "must look like name@example.com"


def test_countries_are_two_letters_in_upper_case():
    assert country_code(" us ", field="f") == "US"
    assert country_code("ca", field="f") == "CA"
    for code in ["ZZZ", "U", "", "1A", "ÜS"]:
        assert refused(country_code, code).detail == "must be a two-letter ISO 3166 country code"


def test_us_states_and_zip_codes_follow_us_rules_others_only_their_length():
    assert state_code("tx", country="US", field="f") == "TX"
    assert refused(state_code, "ZZ", country="US").detail == "is not a US state or territory code"
    assert state_code("qc", country="CA", field="f") == "QC"
    for state in ["", " ", "ONT", "T\x00"]:
        refused(state_code, state, country="CA")
    assert postal_code("78701-1234", country="US", field="f") == "78701-1234"
    for code in ["7870", "787011", "78701 1234", "ABCDE"]:
        assert refused(postal_code, code, country="US").detail == (
            "must be a US ZIP code: 12345 or 12345-6789"
        )
    assert postal_code(" H2X 1Y4 ", country="CA", field="f") == "H2X 1Y4"
    refused(postal_code, "", country="CA")
    refused(postal_code, "12345678901", country="CA")


def test_time_zones_are_iana_names():
    assert time_zone("America/Chicago", field="f") == "America/Chicago"
    assert time_zone("UTC", field="f") == "UTC"
    for name in ["Mars/Olympus", "america/chicago", "", "localtime", "../etc/passwd", "A" * 10_000]:
        assert refused(time_zone, name).detail.startswith("must be an IANA time zone name")


def test_a_birth_date_is_neither_in_the_future_nor_before_1900():
    for born in [TODAY, date(1900, 1, 1), date(1985, 12, 10)]:
        assert birth_date(born, today=TODAY, field="f") == born
    assert refused(birth_date, date(2026, 1, 6), today=TODAY).detail == "must not be in the future"
    assert refused(birth_date, date(1899, 12, 31), today=TODAY).detail == (
        "must be on or after 1900-01-01"
    )


def address(**overrides) -> PostalAddress:
    fields = {
        "line1": " 1 Analytical Way ",
        "line2": " ",
        "city": "Austin",
        "state": "tx",
        "postal_code": "73301",
        "country": "us",
        "time_zone": "America/Chicago",
    }
    return PostalAddress(**{**fields, **overrides})


def test_an_address_is_checked_part_by_part_and_kept_tidy():
    assert postal_address(address(), field="address") == PostalAddress(
        line1="1 Analytical Way",
        line2=None,
        city="Austin",
        state="TX",
        postal_code="73301",
        country="US",
        time_zone="America/Chicago",
    )
    assert postal_address(address(time_zone=None), field="address").time_zone is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"line1": "x" * 1_000_000}, "address.line1"),
        ({"line1": " "}, "address.line1"),
        ({"line2": "x" * 201}, "address.line2"),
        ({"city": ""}, "address.city"),
        ({"state": ""}, "address.state"),
        ({"state": "Texas"}, "address.state"),
        ({"postal_code": ""}, "address.postal_code"),
        ({"postal_code": "7330"}, "address.postal_code"),
        ({"country": "ZZZ"}, "address.country"),
        ({"time_zone": "Mars/Olympus"}, "address.time_zone"),
    ],
)
def test_a_bad_part_is_named_in_the_error(overrides, field):
    with pytest.raises(ValidationFailed) as caught:
        postal_address(address(**overrides), field="address")
    assert caught.value.field == field
