import hashlib
import random
import uuid

import pytest

from debtflow_core.domain.card_numbers import looks_like_card_number, strings_in


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "card: 5555-5555-5555-4444!",
        "378282246310005",
        "pm_4242424242424242",
        "card4242424242424242x",
        "4242.4242.4242.4242",
        "3782.822463.10005",
    ],
)
def test_card_numbers_are_spotted_however_they_are_typed(text):
    assert looks_like_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "pm_card_visa",
        "4242424242424241",
        "12345",
        "2026-11-27",
        "+1 555 555 0100",
        "",
        "42424242-4242-4242-4242-424242424242",
        "91827364-5512-4123-8000-123456789012",
        "f40a5107-3165-3052-8125-3ee9a3105659",  # "3165-3052-8125-3" passes the Luhn check
        "F40A51073165305281253EE9A3105659",
        "5d8f6cce532a7aeb57196be62344095936793400b3aeb3580d248b17d5518a86",  # a SHA-256
        "pm_1NXaBcD4eFgH5iJkL6mN",
        "2026.11.27",
        "42424242424242424242",  # 20 digits
    ],
)
def test_other_text_is_not_a_card_number(text):
    assert not looks_like_card_number(text)


def test_every_string_of_a_json_value_is_searched():
    body = {"a": [1, {"pan": "4242424242424242"}], "4000056655665556": True}
    assert sorted(strings_in(body)) == sorted(
        ["a", "1", "pan", "4242424242424242", "4000056655665556"]
    )


def test_no_uuid_is_ever_taken_for_a_card_number():
    rng = random.Random(7)
    digits_only = [
        str(uuid.UUID("".join(rng.choice("0123456789") for _ in range(32)))) for _ in range(5000)
    ]
    assert not any(looks_like_card_number(value) for value in digits_only)
    # With letters, the last four groups of about one UUID in 4,000 read as a card number.
    hex_ = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(20_000)]
    assert not any(looks_like_card_number(f"pm_{value}") for value in hex_)
    assert not any(looks_like_card_number(value.replace("-", "")) for value in hex_)


def test_no_hash_is_taken_for_a_card_number():
    # One SHA-256 in about 230 holds a digit run that passes the Luhn check.
    rng = random.Random(7)
    hashes = [hashlib.sha256(rng.randbytes(16)).hexdigest() for _ in range(20_000)]
    assert not any(looks_like_card_number(f"key-{value}") for value in hashes)
