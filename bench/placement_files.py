"""Deterministic placement files for the import benchmark and tests.

    python bench/placement_files.py OUT.csv [--rows 1000000] [--seed 5] [--bad 0.01]

The same arguments always give the same bytes. Every row is valid except a ``bad`` share,
spread evenly and chosen by the seed, each broken in one of a few ways a creditor's export
gets wrong (a negative or non-numeric balance, an impossible date, a missing name, a bad
state).
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

HEADER = (
    "account_id",
    "debtor_id",
    "first_name",
    "last_name",
    "date_of_birth",
    "phones",
    "emails",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zip",
    "country",
    "original_creditor",
    "placed_balance",
    "currency",
    "charge_off_date",
    "first_delinquency_date",
    "itemization_date",
    "last_payment_date",
)
_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jon")
_LAST = ("Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Huang", "Ito")
_CITIES = (("Austin", "TX"), ("Boston", "MA"), ("Denver", "CO"), ("Fresno", "CA"))
_CREDITORS = ("Northwind Bank", "Contoso Telecom", "Fabrikam Health", "Tailspin Retail")
_BREAKAGES = (
    ("placed_balance", "-12.50"),
    ("placed_balance", "twelve"),
    ("charge_off_date", "2023-02-30"),
    ("first_name", ""),
    ("state", "ZZ"),
)
_DAY0 = date(2020, 1, 1)


def rows(count: int, *, seed: int = 5, bad: float = 0.01) -> Iterator[tuple[str, ...]]:
    """``count`` data rows (without the header), the same for the same arguments."""
    rng = random.Random(seed)
    every = round(1 / bad) if bad else 0
    index = {name: i for i, name in enumerate(HEADER)}
    for n in range(count):
        city, state = _CITIES[n % len(_CITIES)]
        charged_off = _DAY0 + timedelta(days=rng.randrange(1500))
        row = [
            f"ACC-{n:09d}",
            f"DEB-{n // 2:09d}",
            _FIRST[rng.randrange(len(_FIRST))],
            _LAST[rng.randrange(len(_LAST))],
            (date(1950, 1, 1) + timedelta(days=rng.randrange(18000))).isoformat(),
            f"+1 512 555 {rng.randrange(10000):04d}",
            f"debtor{n}@example.com",
            f"{rng.randrange(1, 9999)} Main St",
            "Apt 4" if n % 5 == 0 else "",
            city,
            state,
            f"{rng.randrange(10000, 99999)}",
            "US",
            _CREDITORS[n % len(_CREDITORS)],
            f"{rng.randrange(100, 2_000_000) / 100:.2f}",
            "USD",
            charged_off.isoformat(),
            (charged_off - timedelta(days=180)).isoformat(),
            charged_off.isoformat(),
            (charged_off - timedelta(days=200)).isoformat(),
        ]
        if every and n % every == every // 2:
            column, value = _BREAKAGES[rng.randrange(len(_BREAKAGES))]
            row[index[column]] = value
        yield tuple(row)


def write(path: Path, count: int, *, seed: int = 5, bad: float = 0.01) -> Path:
    """Write a placement file of ``count`` rows to ``path`` (UTF-8, comma, CRLF as RFC 4180)."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        writer.writerows(rows(count, seed=seed, bad=bad))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--bad", type=float, default=0.01)
    args = parser.parse_args()
    write(args.out, args.rows, seed=args.seed, bad=args.bad)


if __name__ == "__main__":
    main()
