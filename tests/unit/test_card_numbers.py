import random
import uuid

import pytest

from debtflow_core.domain.card_numbers import looks_like_card_number, strings_in


@pytest.mark.parametrize(
    "text",
    ["4242424242424242", "4242 4242 4242 4242", "card: 5555-5555-5555-4444!", "378282246310005"],
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
