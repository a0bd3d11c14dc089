"""Reading placement files: every bad input the issue lists, each harmless."""

from __future__ import annotations

import csv
import io
import random
from datetime import date
from pathlib import Path

import pytest

import debtflow_core.placement as placement
from debtflow_core.contact_data import COUNTRY_REASON, EMAIL_REASON, PHONE_REASON
from debtflow_core.domain.imports import ImportRowError
from debtflow_core.placement import (
    MAX_LINE,
    PlacementFileRejected,
    PlacementReader,
    PlacementRow,
    minor_units,
    scan_file,
)

HEADER = "account_id,first_name,last_name,original_creditor,placed_balance"


def read(text: str, **options) -> tuple[PlacementReader, list[PlacementRow | ImportRowError]]:
    reader = PlacementReader(io.StringIO(text, newline=""), **options)
    return reader, list(reader)


def only(items):
    (item,) = items
    return item


def test_a_full_row_is_read_with_every_column():
    _, items = read(
        "\ufeffAccount ID,Debtor ID,First Name,last_name,date_of_birth,phones,emails,"
        "address_line1,address_line2,city,state,zip,country,original_creditor,"
        "placed_balance,currency,charge_off_date,first_delinquency_date,itemization_date,"
        "last_payment_date\r\n"
        'A-1,D-1,Ada,Lovelace,1815-12-10,"+1 512 555 0100; (512) 555-0101",ada@example.com,'
        '"1 Main St, Suite 2",,Austin,tx,78701-1234,us,"Northwind ""NW"" Bank",1234.5,USD,'
        "2024-03-01,2023-09-01,2024-03-01,2023-08-15\r\n"
    )
    row = only(items)
    assert row == PlacementRow(
        line=2,
        account_id="A-1",
        original_creditor='Northwind "NW" Bank',
        placed_balance=123_450,
        currency="USD",
        charge_off_date=date(2024, 3, 1),
        first_delinquency_date=date(2023, 9, 1),
        itemization_date=date(2024, 3, 1),
        last_payment_date=date(2023, 8, 15),
        debtor_id="D-1",
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=date(1815, 12, 10),
        phones=("+1 512 555 0100", "(512) 555-0101"),
        emails=("ada@example.com",),
        address_line1="1 Main St, Suite 2",
        address_line2=None,
        city="Austin",
        state="TX",
        zip="78701-1234",
        country="US",
    )


def test_the_sample_file_reads_without_errors():
    sample = Path(__file__).parents[2] / "docs" / "samples" / "placement.csv"
    assert scan_file(sample).problem is None
    with sample.open(encoding="utf-8-sig", newline="") as stream:
        items = list(PlacementReader(stream))
    assert items and all(isinstance(i, PlacementRow) for i in items)


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("1234.56", "USD", 123_456),
        ("0.1", "USD", 10),
        ("7", "USD", 700),
        ("1000", "JPY", 1000),
        ("1000.00", "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("10000000000.00", "USD", 10**12),
    ],
)
def test_balances_become_exact_minor_units(amount, currency, units):
    assert minor_units(amount, currency) == units


def test_a_balance_over_the_largest_amount_is_a_row_error():
    _, items = read(f"{HEADER}\nA-1,Ada,Lovelace,NW,10000000000.01\n")
    error = only(items)
    assert isinstance(error, ImportRowError)
    assert (error.column, error.reason) == (
        "placed_balance",
        "is more than 1000000000000 minor units",
    )


@pytest.mark.parametrize("amount", ["-12.50", "twelve", '"1,234.00"', "1.2.3", "12.", ".5", "١٢"])
def test_negative_and_non_numeric_balances_are_row_errors(amount):
    _, items = read(f"{HEADER}\nA-1,Ada,Lovelace,NW,{amount}\n")
    error = only(items)
    assert isinstance(error, ImportRowError)
    assert (error.line, error.column) == (2, "placed_balance")
    assert error.reason == "must be a non-negative decimal amount like 1234.56"


def test_a_balance_with_more_decimals_than_its_currency_is_refused():
    _, items = read(f"{HEADER},currency\nA-1,Ada,Lovelace,NW,10.5,JPY\n")
    assert only(items).reason == "has more decimals than JPY allows (0)"


def test_an_impossible_date_is_a_row_error_and_the_next_row_still_reads():
    _, items = read(
        f"{HEADER},charge_off_date\nA-1,Ada,Lovelace,NW,1.00,2023-02-30\n"
        "A-2,Ada,Lovelace,NW,1.00,2023-02-28\n"
    )
    error, row = items
    assert error == ImportRowError(
        line=2,
        column="charge_off_date",
        reason="must be a real date written YYYY-MM-DD",
        value="2023-02-30",
    )
    assert row.charge_off_date == date(2023, 2, 28)


def test_personal_data_is_redacted_from_errors():
    _, items = read(f"{HEADER},date_of_birth\nA-1,Ada,Lovelace,NW,1.00,1990-02-30\n")
    error = only(items)
    assert error.column == "date_of_birth"
    assert error.value == "[redacted, 10 characters]"


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        ("Austin,ZZ,78701", "state", "is not a US state or territory code"),
        ("Austin,TX,7870", "zip", "must be a US ZIP code: 12345 or 12345-6789"),
        (",TX,78701", "city", "is required when an address is given"),
    ],
)
def test_state_and_zip_are_checked(cells, column, reason):
    _, items = read(
        f"{HEADER},address_line1,city,state,zip\nA-1,Ada,Lovelace,NW,1.00,1 Main,{cells}\n"
    )
    error = only(items)
    assert (error.column, error.reason) == (column, reason)


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        ("abc,,,", "phones", PHONE_REASON),
        ("5550100; 555010,,,", "phones", PHONE_REASON),
        (",ada@example;ada@example.com,,", "emails", EMAIL_REASON),
        (",,,Z1", "country", COUNTRY_REASON),
    ],
)
def test_phones_emails_and_countries_follow_the_debtor_api_rules(cells, column, reason):
    _, items = read(f"{HEADER},phones,emails,city,country\nA-1,Ada,Lovelace,NW,1.00,{cells}\n")
    error = only(items)
    assert (error.column, error.reason) == (column, reason)


def test_phones_emails_and_codes_are_kept_trimmed():
    _, items = read(
        f"{HEADER},phones,emails,address_line1,city,state,zip,country\n"
        "A-1,Ada,Lovelace,NW,1.00, 5125550100 , ada@example.com ,1 Rue,Paris,75,"
        '" 75001",fr\n'
    )
    row = only(items)
    assert (row.phones, row.emails) == (("5125550100",), ("ada@example.com",))
    assert (row.state, row.zip, row.country) == ("75", "75001", "FR")


def test_emails_are_kept_as_the_debtor_api_keeps_them_in_lower_case_each_once():
    _, items = read(
        f"{HEADER},emails\n"
        'A-1,Ada,Lovelace,NW,1.00," Ada@Example.COM ; bob@example.com;ada@example.com"\n'
    )
    row = only(items)
    assert row.emails == ("ada@example.com", "bob@example.com")


def test_phones_are_kept_each_once_and_at_most_ten_as_by_the_debtor_api():
    numbers = ";".join(f"512555{n:04}" for n in range(11))
    _, items = read(
        f"{HEADER},phones\n"
        'A-1,Ada,Lovelace,NW,1.00," 5125550100 ;5125550101;5125550100"\n'
        f"A-2,Ada,Lovelace,NW,1.00,{numbers}\n"
    )
    row, error = items
    assert row.phones == ("5125550100", "5125550101")
    assert (error.line, error.column, error.reason) == (3, "phones", "a debtor has at most 10")


def test_a_missing_required_value_is_a_row_error():
    _, items = read(f"{HEADER}\nA-1,,Lovelace,NW,1.00\nA-2,  ,Lovelace,NW,1.00\n")
    assert [(e.line, e.column, e.reason) for e in items] == [
        (2, "first_name", "is required"),
        (3, "first_name", "is required"),
    ]


def test_an_empty_file_is_rejected():
    with pytest.raises(PlacementFileRejected, match="empty"):
        read("")


def test_a_header_only_file_has_no_rows():
    reader, items = read(HEADER + "\r\n")
    assert items == []
    assert reader.ignored_columns == ()


def test_a_missing_required_column_rejects_the_file():
    with pytest.raises(PlacementFileRejected) as raised:
        read("account_id,first_name,placed_balance\nA-1,Ada,1.00\n")
    assert raised.value.detail == "required columns are missing: last_name, original_creditor"


def test_unknown_columns_are_ignored_and_reported_once():
    reader, items = read(f"Notes,{HEADER},Score\nhello,A-1,Ada,Lovelace,NW,1.00,7\n")
    assert reader.ignored_columns == ("Notes", "Score")
    assert only(items).account_id == "A-1"


def test_a_column_mapping_accepts_a_creditors_own_headers():
    reader, items = read(
        "Acct No,Given,Surname,Creditor,Balance Due\nA-1,Ada,Lovelace,NW,2.50\n",
        column_mapping={
            "acct no": "account_id",
            "Given": "first_name",
            "Surname": "last_name",
            "Creditor": "original_creditor",
            "BALANCE DUE": "placed_balance",
        },
    )
    assert only(items).placed_balance == 250
    assert reader.ignored_columns == ()


def test_the_delimiter_is_configurable():
    _, items = read(f"{HEADER.replace(',', ';')}\nA-1;Ada;Lovelace;NW, Inc;1.00\n", delimiter=";")
    assert only(items).original_creditor == "NW, Inc"


def test_a_row_with_the_wrong_number_of_fields_is_a_row_error():
    _, items = read(f"{HEADER}\nA-1,Ada,Lovelace,NW\n")
    assert only(items).reason == "has 4 fields where the header has 5"


def test_latin1_bytes_fail_the_scan(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\nA-1,Zoë,Müller,NW,1.00\n".encode("latin-1"))
    scan = scan_file(path)
    assert scan.problem == ("the file is not UTF-8 text (byte 0xEB at offset 71); save it as UTF-8")
    with (
        pytest.raises(PlacementFileRejected, match="not UTF-8"),
        path.open(encoding="utf-8-sig", newline="") as stream,
    ):
        list(PlacementReader(stream))


UNCLOSED = "a quoted field is never closed (a double quote opens it and none ends it)"


def scan_text(tmp_path: Path, text: str, **options) -> str | None:
    path = tmp_path / "scanned.csv"
    path.write_text(text, encoding="utf-8")
    return scan_file(path, **options).problem


def test_an_unclosed_quote_fails_the_scan_and_the_reader(tmp_path):
    text = f'{HEADER}\nA-1,Ada,Lovelace,"NW,1.00\nA-2,Ada,Lovelace,NW,1.00\n'
    assert scan_text(tmp_path, text) == UNCLOSED
    with pytest.raises(PlacementFileRejected, match="opened on line 2 is never closed"):
        read(text)


def test_a_stray_inch_mark_in_an_unquoted_field_is_kept(tmp_path):
    text = f'{HEADER}\nA-1,Ada,Lovelace,Best Buy 32" TV,1.00\nA-2,Ada,Lovelace,NW,2.00\n'
    assert scan_text(tmp_path, text) is None
    first, second = read(text)[1]
    assert (first.original_creditor, second.account_id) == ('Best Buy 32" TV', "A-2")


def test_an_unclosed_quote_after_a_stray_one_is_still_refused_up_front(tmp_path):
    text = (
        f'{HEADER}\nA-1,Ada,Lovelace,Best Buy 32" TV,1.00\n'
        'A-2,Ada,Lovelace,"NW,2.00\nA-3,Ada,Lovelace,NW,3.00\n'
    )
    assert scan_text(tmp_path, text) == UNCLOSED


def test_the_scan_follows_quotes_with_the_files_delimiter(tmp_path):
    # Read with ";", the quote after the comma is inside the field "NW,"...
    text = f'{HEADER.replace(",", ";")}\nA-1;Ada;Lovelace;NW,"Bank;1.00\n'
    assert scan_text(tmp_path, text, delimiter=";") is None
    assert only(read(text, delimiter=";")[1]).original_creditor == 'NW,"Bank'
    # ... but read with ",", it opens a field that never closes.
    assert scan_text(tmp_path, text) == UNCLOSED


def test_a_line_the_reader_refuses_after_a_closing_quote_opens_no_field(tmp_path):
    # Strict, the reader drops the rest of a line whose quoted field is followed by text.
    text = f'{HEADER}\nA-1,Ada,"Love"lace,"NW,1.00\nA-2,Ada,Lovelace,NW,2.00\n'
    assert scan_text(tmp_path, text) is None
    error, row = read(text)[1]
    assert (error.line, row.account_id) == (2, "A-2")


def test_the_scan_agrees_with_the_reader_on_quotes_left_open(tmp_path, monkeypatch):
    # Tiny chunks, so that quotes, delimiters and characters fall across them.
    monkeypatch.setattr(placement, "_SCAN_CHUNK", 3)
    rng = random.Random(4180)
    for _ in range(500):
        delimiter = rng.choice([",", ";", "\t", "§"])
        alphabet = ['"', '"', delimiter, delimiter, "a", "é", " ", "\n", "\r"]
        text = "".join(rng.choices(alphabet, k=rng.randrange(1, 25)))
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        left_open = False
        while True:
            try:
                next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                left_open = str(error) == "unexpected end of data"
        problem = scan_text(tmp_path, text, delimiter=delimiter)
        assert (problem == UNCLOSED) is left_open, (delimiter, text)


def test_the_scan_hashes_the_bytes(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    assert scan_file(path).sha256 == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "empty" in scan_file(empty).problem


def test_a_one_megabyte_line_is_read(tmp_path):
    note = "x" * 1_000_000
    _, items = read(f"{HEADER},notes\nA-1,Ada,Lovelace,NW,1.00,{note}\nA-2,Ada,Lovelace,NW,1.00,\n")
    assert [i.account_id for i in items] == ["A-1", "A-2"]


def test_a_one_megabyte_name_is_a_row_error_showing_no_data():
    _, items = read(f"{HEADER}\nA-1,{'x' * 1_000_000},Lovelace,NW,1.00\n")
    error = only(items)
    assert error.column == "first_name"
    assert error.value == "[redacted, 1000000 characters]"


def test_a_line_longer_than_the_limit_is_skipped_as_a_row_error():
    _, items = read(f"{HEADER}\nA-1,{'x' * (MAX_LINE + 10)}\nA-2,Ada,Lovelace,NW,1.00\n")
    error, row = items
    assert (error.line, error.reason) == (2, f"the line is longer than {MAX_LINE} characters")
    assert (row.line, row.account_id) == (3, "A-2")


def test_a_line_too_long_inside_a_quoted_field_fails_its_row_and_later_ones_are_reported(
    monkeypatch,
):
    monkeypatch.setattr(placement, "MAX_LINE", 120)
    long = "y" * 200
    _, items = read(
        f'{HEADER}\nA-1,Ada,Lovelace,"North\n{long}\nwind",1.00\n'  # lines 2 to 4
        "A-2,Ada,Lovelace,NW,2.00\n"
        f"A-3,Ada,Lovelace,{long},3.00\n"
        "A-4,Ada,Lovelace,NW,4.00\n"
    )
    first, second, third, fourth = items
    assert (first.line, first.reason) == (2, "its line 3 is longer than 120 characters")
    assert (second.line, second.account_id) == (5, "A-2")
    assert (third.line, third.reason) == (6, "the line is longer than 120 characters")
    assert (fourth.line, fourth.account_id) == (7, "A-4")


def test_a_line_too_long_that_opens_a_quoted_field_fails_the_lines_the_field_spans(
    monkeypatch,
):
    monkeypatch.setattr(placement, "MAX_LINE", 120)
    _, items = read(
        f'{HEADER}\nA-1,Ada,Lovelace,"North{"y" * 200}\nwind",1.00\nA-2,Ada,Lovelace,NW,2.00\n'
    )
    error, row = items
    assert (error.line, error.reason) == (2, "the line is longer than 120 characters")
    assert (row.line, row.account_id) == (4, "A-2")


def test_a_line_too_long_that_closes_a_quoted_field_leaves_the_next_rows_whole(monkeypatch):
    monkeypatch.setattr(placement, "MAX_LINE", 120)
    _, items = read(
        f'{HEADER}\nA-1,Ada,Lovelace,"North\n{"y" * 200}wind",1.00\n'
        "A-2,Ada,Lovelace,NW,2.00\nA-3,Ada,Lovelace,NW,3.00\n"
    )
    error, *rows = items
    assert (error.line, error.reason) == (2, "its line 3 is longer than 120 characters")
    assert [(row.line, row.account_id) for row in rows] == [(4, "A-2"), (5, "A-3")]


def test_line_numbers_count_physical_lines_across_quoted_line_breaks():
    _, items = read(f'{HEADER}\nA-1,Ada,Lovelace,"North\nwind",1.00\n\nA-2,Ada,Lovelace,NW,x\n')
    row, error = items
    assert row.original_creditor == "North\nwind"
    assert (row.line, error.line) == (2, 5)


def test_half_bad_rows_yield_half_errors():
    lines = [f"A-{n},Ada,Lovelace,NW,{'-1' if n % 2 else '1.00'}" for n in range(100)]
    _, items = read(HEADER + "\n" + "\n".join(lines) + "\n")
    errors = [i for i in items if isinstance(i, ImportRowError)]
    assert len(items) == 100
    assert len(errors) == 50
