"""New entity ids are UUIDv7: versioned, time-ordered, random where the time ends."""

from __future__ import annotations

import time

from debtflow_core.ids import new_id


def test_an_id_is_a_version_7_rfc_uuid_starting_with_the_time_in_milliseconds():
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000

    assert made.version == 7
    assert made.variant == "specified in RFC 4122"
    assert before <= made.int >> 80 <= after


def test_ids_made_later_sort_after_and_no_two_are_alike():
    first = new_id()
    time.sleep(0.002)
    later = [new_id() for _ in range(10_000)]

    assert all(first < made for made in later)
    assert len(set(later)) == len(later)
