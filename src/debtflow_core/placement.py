"""Placement files: reading a creditor's CSV of new accounts, row by row, in constant memory.

The format is described in ``docs/placement-format.md``. :func:`scan_file` checks a whole
file's bytes (hash, encoding, quoting) before anything is written; :class:`PlacementReader`
then streams its rows, each either a validated :class:`PlacementRow` or an
:class:`~debtflow_core.domain.imports.ImportRowError`. A problem with the file as a whole
raises :class:`PlacementFileRejected` with one clear reason.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, TextIO

import msgspec
from msgspec import Meta

from debtflow_core.contact_data import (
    COUNTRY_REASON,
    MAX_POSTAL_CODE,
    MAX_TEXT,
    STATE_REASON,
    at_most_max_contacts,
    country_code,
    email_address,
    phone_number,
    postal_code,
    state_code,
)
from debtflow_core.domain.debtor import PostalAddress
from debtflow_core.domain.imports import ImportRowError
from debtflow_core.domain.money import MAX_AMOUNT
from debtflow_core.errors import ValidationFailed

MAX_LINE = 2 * 1024 * 1024
"""The longest line (in characters) read; a longer one is refused as a row error."""

_SCAN_CHUNK = 1024 * 1024

# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}

Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Id = Annotated[str, Meta(max_length=100)]


class _Row(msgspec.Struct, array_like=True):
    """The schema every row is converted to, in :data:`COLUMNS` order. Blank cells are None.

    Formats cheaper to check with string methods than with patterns (amounts, codes) are
    checked after the conversion, in :func:`_validate`.
    """

    account_id: Id
    original_creditor: Text
    placed_balance: Annotated[str, Meta(max_length=20)]
    currency: Annotated[str, Meta(max_length=3)] | None
    charge_off_date: date | None
    first_delinquency_date: date | None
    itemization_date: date | None
    last_payment_date: date | None
    debtor_id: Id | None
    first_name: Text
    last_name: Text
    date_of_birth: date | None
    phones: Annotated[str, Meta(max_length=500)] | None
    emails: Annotated[str, Meta(max_length=1000)] | None
    address_line1: Text | None
    address_line2: Text | None
    city: Text | None
    state: Annotated[str, Meta(max_length=2)] | None
    zip: Annotated[str, Meta(max_length=MAX_POSTAL_CODE)] | None
    country: Annotated[str, Meta(max_length=2)] | None


COLUMNS: tuple[str, ...] = _Row.__struct_fields__
REQUIRED_COLUMNS = frozenset(
    {"account_id", "original_creditor", "placed_balance", "first_name", "last_name"}
)
PERSONAL_COLUMNS = frozenset(
    {
        "first_name",
        "last_name",
        "date_of_birth",
        "phones",
        "emails",
        "address_line1",
        "address_line2",
        "city",
        "zip",
    }
)
BALANCE_REASON = "must be a non-negative decimal amount like 1234.56"
_REASONS = {
    "currency": "must be an ISO 4217 code like USD",
    "state": STATE_REASON,
    "country": COUNTRY_REASON,
}
_DATE_REASON = "must be a real date written YYYY-MM-DD"
_DATE_COLUMNS = frozenset(
    {
        "charge_off_date",
        "first_delinquency_date",
        "itemization_date",
        "last_payment_date",
        "date_of_birth",
    }
)
_ERROR_PATH = re.compile(r" - at `\$\[(\d+)\]`$")


class PlacementRow(msgspec.Struct, frozen=True, kw_only=True):
    """One valid row: a debtor and one of their accounts, keyed by the creditor's ids.

    ``placed_balance`` is in minor units of ``currency``. ``debtor_id`` is the creditor's
    id of the debtor (the account id when the file has none).
    """

    line: int
    account_id: str
    original_creditor: str
    placed_balance: int
    currency: str
    charge_off_date: date | None
    first_delinquency_date: date | None
    itemization_date: date | None
    last_payment_date: date | None
    debtor_id: str
    first_name: str
    last_name: str
    date_of_birth: date | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    zip: str | None
    country: str

    def address(self) -> PostalAddress | None:
        """The debtor's postal address; ``None`` when the row gives none (the reader made
        sure that an address given has its line, city, state and ZIP)."""
        if self.address_line1 is None or self.city is None or self.state is None:
            return None
        if self.zip is None:
            return None
        return PostalAddress(
            line1=self.address_line1,
            line2=self.address_line2,
            city=self.city,
            state=self.state,
            postal_code=self.zip,
            country=self.country,
        )


class PlacementFileRejected(ValidationFailed):
    """The file as a whole cannot be imported: not UTF-8, no header, a required column
    missing, a quote never closed. ``detail`` says why, in one line."""


class FileScan(msgspec.Struct, frozen=True, kw_only=True):
    """What one pass over a file's bytes found: its SHA-256 and size, and ``problem`` when
    it cannot be a placement file (not UTF-8, a quote never closed, empty). Quoting depends
    on the delimiter: ``delimiter`` is the one the quotes were followed with."""

    sha256: str
    size: int
    problem: str | None
    delimiter: str


def scan_file(path: Path, *, delimiter: str = ",") -> FileScan:
    """Hash the file and check, in the same pass and in constant memory, that it decodes as
    UTF-8 and that no quoted field is left open at its end, as the reader would find it
    with ``delimiter``."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    quoting = _Quoting(delimiter)
    size = 0
    problem: str | None = None
    with path.open("rb") as file:
        while chunk := file.read(_SCAN_CHUNK):
            digest.update(chunk)
            if problem is None:
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    problem = _not_utf8(error, size)
                else:
                    # The reader decodes with utf-8-sig: a byte-order mark is not a field.
                    quoting.feed(text if size else text.removeprefix("\ufeff"))
            size += len(chunk)
    if problem is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            problem = _not_utf8(error, size - len(error.object) + error.start)
    if problem is None and size == 0:
        problem = "the file is empty: a placement file starts with a header row"
    if problem is None and quoting.state is _QUOTED:
        problem = "a quoted field is never closed (a double quote opens it and none ends it)"
    return FileScan(sha256=digest.hexdigest(), size=size, problem=problem, delimiter=delimiter)


# Where CSV text stands between two characters, as the csv module's reader sees it.
_BOUNDARY = 0  # at the start of a field (or of a record)
_FIELD = 1  # inside an unquoted field: a quote there is a literal character
_QUOTED = 2  # inside a quoted field
_CLOSING = 3  # just after a quote inside a quoted field: a doubled quote or its end
_SKIPPING = 4  # a strict reader refused the line here: the rest of it is dropped


class _Quoting:
    """Follows text fed in pieces through the csv module's quoting rules for the reader's
    dialect (doubled quotes, strict), keeping only its ``state``: a quote opens a field only
    at the field's start, and a quoted field's closing quote followed by anything but a
    delimiter or line break makes the reader refuse the rest of that line.

    Quote-free text costs one ``str.find``; runs of well-formed fields, quoted or not, are
    matched by one regular expression, so a file quoting every field stays fast too.
    """

    def __init__(self, delimiter: str) -> None:
        self.state = _BOUNDARY
        self._separators = delimiter + "\r\n"
        d = re.escape(delimiter)
        self._fields = re.compile(
            rf'(?:(?:"[^"]*+(?:""[^"]*+)*+"|[^"{d}\r\n][^{d}\r\n]*+)?[{d}\r\n])*+'
        )
        self._quoted = re.compile(r'[^"]*+(?:""[^"]*+)*+')
        self._line_end = re.compile(r"[\r\n]")

    def feed(self, text: str) -> None:
        state, position, end, separators = self.state, 0, len(text), self._separators
        while position < end:
            if state == _QUOTED:
                position = _stop(self._quoted, text, position)
                if position == end:
                    break
                state, position = _CLOSING, position + 1
            elif state == _CLOSING:
                if text[position] == '"':
                    state, position = _QUOTED, position + 1
                elif text[position] in separators:
                    state, position = _BOUNDARY, position + 1
                else:
                    state = _SKIPPING
            elif state == _SKIPPING:
                found = self._line_end.search(text, position)
                if found is None:
                    break
                state, position = _BOUNDARY, found.end()
            else:
                quote = text.find('"', position)
                if quote < 0:
                    state = _BOUNDARY if text[-1] in separators else _FIELD
                    break
                opens = text[quote - 1] in separators if quote > position else state == _BOUNDARY
                if not opens:
                    state, position = _FIELD, quote + 1
                    continue
                position = _stop(self._fields, text, quote)
                if position == end:
                    state = _BOUNDARY
                elif text[position] == '"':
                    state, position = _QUOTED, position + 1
                else:  # an unquoted field running to the end of the text
                    state = _FIELD
                    break
        self.state = state


def _stop(pattern: re.Pattern[str], text: str, position: int) -> int:
    """Where ``pattern``, which also matches nothing, stops matching ``text`` at ``position``."""
    found = pattern.match(text, position)
    assert found is not None
    return found.end()


def _not_utf8(error: UnicodeDecodeError, offset: int) -> str:
    byte = error.object[error.start]
    return (
        f"the file is not UTF-8 text (byte 0x{byte:02X} at offset {offset + error.start}); "
        "save it as UTF-8"
    )


def minor_units(amount: str, currency: str) -> int:
    """The decimal string ``amount`` (``1234.56``) as whole minor units of ``currency``,
    exactly, never through a float; ValueError for anything but plain digits with at most
    one point, or more decimals than the currency has (other than zeros)."""
    exponent = _EXPONENTS.get(currency, 2)
    whole, point, fraction = amount.partition(".")
    digits = whole + fraction
    if not (whole and digits.isdigit() and digits.isascii()) or (point and not fraction):
        raise ValueError(BALANCE_REASON)
    kept, extra = fraction[:exponent], fraction[exponent:]
    if extra.strip("0"):
        raise ValueError(f"has more decimals than {currency} allows ({exponent})")
    units = int(whole + kept.ljust(exponent, "0"))
    if units > MAX_AMOUNT:
        raise ValueError(f"is more than {MAX_AMOUNT} minor units")
    return units


def redact(column: str | None, value: str | None) -> str | None:
    """``value`` as an error may show it: personal data hidden, long values shortened."""
    if value is None:
        return None
    if column in PERSONAL_COLUMNS:
        return f"[redacted, {len(value)} characters]"
    return value if len(value) <= 64 else f"{value[:61]}..."


class _BoundedLines:
    """The stream's lines for the csv reader, each at most :data:`MAX_LINE` characters.

    A longer line is read through to its end (never held whole), its number lands in
    ``too_long``, and the reader gets a short stand-in that leaves it where the whole line
    would have: inside a quoted field or not, so the lines after it read as they are. The
    reader sets ``record_end``, the last line of the last record it returned: a line after
    it starts a record, and any other continues a quoted field.
    """

    def __init__(self, stream: TextIO, delimiter: str) -> None:
        self.too_long: deque[int] = deque()
        self.record_end = 0
        self._stream = stream
        self._delimiter = delimiter

    def __iter__(self) -> Iterator[str]:
        number = 0
        while line := self._stream.readline(MAX_LINE):
            number += 1
            if len(line) == MAX_LINE and line[-1] not in "\r\n":
                line = self._stand_in(line, quoted=self.record_end < number - 1)
                self.too_long.append(number)
            yield line

    def _stand_in(self, start: str, *, quoted: bool) -> str:
        quoting = _Quoting(self._delimiter)
        quoting.state = _QUOTED if quoted else _BOUNDARY
        piece = start
        while piece:
            quoting.feed(piece)
            if piece[-1] in "\r\n":
                break
            piece = self._stream.readline(MAX_LINE)
        # A quote ends the quoted field the line began in, or opens one the line leaves open.
        return '"\n' if (quoting.state == _QUOTED) != quoted else "\n"


class PlacementReader:
    """The rows of a placement file read from ``stream`` (text, opened with ``newline=""``).

    The header is read at once: a missing required column or an empty stream raises
    :class:`PlacementFileRejected`. ``column_mapping`` maps a creditor's header names to
    ours (case-insensitive); other headers are matched to our column names ignoring case,
    spaces and dashes. Unknown columns are ignored and listed in ``ignored_columns``.
    Iterating yields a :class:`PlacementRow` or an :class:`ImportRowError` per row; an
    unreadable stream (bad encoding, a quote open at the end) raises PlacementFileRejected.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        delimiter: str = ",",
        column_mapping: Mapping[str, str] | None = None,
    ) -> None:
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise PlacementFileRejected(
                "the delimiter must be one character, not a quote or line break",
                field="delimiter",
            )
        csv.field_size_limit(MAX_LINE)
        self._lines = _BoundedLines(stream, delimiter)
        self._reader = csv.reader(self._lines, delimiter=delimiter, strict=True)
        header = self._next_record()
        if header is None or not any(cell.strip() for cell in header):
            raise PlacementFileRejected("the file is empty: it has no header row")
        header[0] = header[0].removeprefix("\ufeff")
        mapping = {_key(k): _normal(v) for k, v in (column_mapping or {}).items()}
        positions: dict[str, int] = {}
        ignored: list[str] = []
        for position, name in enumerate(header):
            column = mapping.get(_key(name)) or _normal(name)
            if column in COLUMNS and column not in positions:
                positions[column] = position
            else:
                ignored.append(name.strip())
        missing = sorted(REQUIRED_COLUMNS - positions.keys())
        if missing:
            raise PlacementFileRejected(f"required columns are missing: {', '.join(missing)}")
        self.ignored_columns: tuple[str, ...] = tuple(ignored)
        self._width = len(header)
        # A column the file lacks reads the blank cell appended to every record.
        self._positions = [positions.get(column, len(header)) for column in COLUMNS]

    def _next_record(self) -> list[str] | None:
        try:
            record = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as error:
            raise PlacementFileRejected(f"line {self._reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise PlacementFileRejected(_not_utf8(error, 0)) from None
        self._lines.record_end = self._reader.line_num
        if self._lines.too_long:
            raise PlacementFileRejected(f"the header is longer than {MAX_LINE} characters")
        return record

    def __iter__(self) -> Iterator[PlacementRow | ImportRowError]:
        reader, width, positions, lines = self._reader, self._width, self._positions, self._lines
        too_long = lines.too_long
        line = reader.line_num
        while True:
            problem = None
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                if str(error) == "unexpected end of data":
                    raise PlacementFileRejected(
                        f"a quoted field opened on line {line + 1} is never closed"
                    ) from None
                record, problem = [], str(error)
            except UnicodeDecodeError as error:
                raise PlacementFileRejected(_not_utf8(error, 0)) from None
            start, line = line + 1, reader.line_num
            lines.record_end = line
            if too_long and too_long[0] <= line:
                yield _too_long(start, line, too_long)
                continue
            if problem is not None:
                yield ImportRowError(line=start, column=None, reason=problem, value=None)
                continue
            if not record:
                continue
            if len(record) != width:
                yield ImportRowError(
                    line=start,
                    column=None,
                    reason=f"has {len(record)} fields where the header has {width}",
                    value=None,
                )
                continue
            if "\x00" in "".join(record):
                yield ImportRowError(
                    line=start, column=None, reason="contains a NUL character", value=None
                )
                continue
            record.append("")
            yield _validate(start, [record[p] or None for p in positions])


def _too_long(start: int, end: int, too_long: deque[int]) -> ImportRowError:
    """The error of the row on lines ``start`` to ``end``, the first of ``too_long`` among
    them, which leave ``too_long``."""
    first = too_long.popleft()
    while too_long and too_long[0] <= end:
        too_long.popleft()
    where = "the line" if first == start else f"its line {first}"
    return ImportRowError(
        line=start,
        column=None,
        reason=f"{where} is longer than {MAX_LINE} characters",
        value=None,
    )


def _validate(line: int, cells: list[str | None]) -> PlacementRow | ImportRowError:
    try:
        row = msgspec.convert(cells, _Row)
    except msgspec.ValidationError as error:
        return _schema_error(line, cells, str(error))
    account_id, debtor_id = row.account_id.strip(), (row.debtor_id or "").strip()
    first_name, last_name = row.first_name.strip(), row.last_name.strip()
    creditor = row.original_creditor.strip()
    for column, value in (
        ("account_id", account_id),
        ("original_creditor", creditor),
        ("first_name", first_name),
        ("last_name", last_name),
    ):
        if not value:
            return _error(line, column, "is required", None)
    currency = row.currency.strip() if row.currency else "USD"
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        return _error(line, "currency", _REASONS["currency"], currency)
    try:
        balance = minor_units(row.placed_balance.strip(), currency)
    except ValueError as error:
        return _error(line, "placed_balance", str(error), row.placed_balance)
    try:
        country, state, zip_code, phones, emails = _contact_data(row)
    except ValidationFailed as error:
        assert error.field is not None  # always the column
        return _error(line, error.field, error.detail, getattr(row, error.field))
    return PlacementRow(
        line=line,
        account_id=account_id,
        original_creditor=creditor,
        placed_balance=balance,
        currency=currency,
        charge_off_date=row.charge_off_date,
        first_delinquency_date=row.first_delinquency_date,
        itemization_date=row.itemization_date,
        last_payment_date=row.last_payment_date,
        debtor_id=debtor_id or account_id,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=row.date_of_birth,
        phones=phones,
        emails=emails,
        address_line1=row.address_line1,
        address_line2=row.address_line2,
        city=row.city,
        state=state,
        zip=zip_code,
        country=country,
    )


def _contact_data(
    row: _Row,
) -> tuple[str, str | None, str | None, tuple[str, ...], tuple[str, ...]]:
    """The row's country, state, ZIP, phones and emails, by the rules the debtor API applies
    too (:mod:`debtflow_core.contact_data`); a ValidationFailed names the column. Checked in
    this order, so that a row's first problem is the one reported."""
    country = country_code(row.country, field="country") if row.country else "US"
    state, zip_code = row.state, row.zip
    if any(_address(row)):
        blank = next((c for c, v in zip(_ADDRESS, _address(row), strict=True) if not v), None)
        if blank is not None:
            raise ValidationFailed("is required when an address is given", field=blank)
        assert state is not None and zip_code is not None  # neither is blank
        state = state_code(state, country=country, field="state")
        zip_code = postal_code(zip_code, country=country, field="zip")
    # Each number and address once, and no more of them than the debtor API keeps.
    phones = tuple(
        dict.fromkeys(phone_number(number, field="phones") for number in _split(row.phones))
    )
    at_most_max_contacts(phones, field="phones")
    emails = tuple(
        dict.fromkeys(email_address(email, field="emails") for email in _split(row.emails))
    )
    at_most_max_contacts(emails, field="emails")
    return country, state, zip_code, phones, emails


def _address(row: _Row) -> tuple[str | None, ...]:
    return (row.address_line1, row.city, row.state, row.zip)


_ADDRESS = ("address_line1", "city", "state", "zip")


def _split(cell: str | None) -> tuple[str, ...]:
    if cell is None:
        return ()
    if ";" not in cell:
        return (cell,)
    return tuple(part for part in (p.strip() for p in cell.split(";")) if part)


def _schema_error(line: int, cells: list[str | None], message: str) -> ImportRowError:
    found = _ERROR_PATH.search(message)
    if found is None:
        return ImportRowError(line=line, column=None, reason=message, value=None)
    index = int(found.group(1))
    column, value = COLUMNS[index], cells[index]
    if value is None:
        reason = "is required"
    elif column in _REASONS:
        reason = _REASONS[column]
    elif column in _DATE_COLUMNS:
        reason = _DATE_REASON
    else:
        reason = message[: found.start()].replace("Expected `str` of length", "must have length")
    return _error(line, column, reason, value)


def _error(line: int, column: str, reason: str, value: str | None) -> ImportRowError:
    return ImportRowError(line=line, column=column, reason=reason, value=redact(column, value))


def _key(name: str) -> str:
    return name.strip().lower()


def _normal(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())
