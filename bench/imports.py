"""Benchmark placement imports into PostgreSQL against two references, on the same rows.

    python bench/imports.py [--rows 1000000] [--url postgresql://postgres@127.0.0.1/postgres]

It writes a deterministic placement file (``placement_files.py``: seeded, 1% bad rows),
recreates the database ``debtflow_bench_imports`` next to ``--url`` and migrates it, then
measures, each into the same emptied tables:

- end to end: ``debtflow import FILE --agency bench`` as a process of its own (scan and
  hash, parse and validate, staged merges, run bookkeeping), with the peak RSS of it
  and its parser process together;
- (a) the ceiling: the valid rows' debtors and accounts by binary ``COPY FROM STDIN``;
- (b) the naive design: ``executemany`` of ``INSERT … ON CONFLICT DO UPDATE`` for the
  debtors and then the accounts, 1000 rows per transaction.

Rows per second count the file's data rows for the import, and the valid rows for the
references. On a shared machine, wall-clock rates measure a share of contended cores; the
CPU each measure used, in the client process and in the database's backends (sampled from
``/proc``: the server must run on this machine), is printed beside them as a figure that
contention moves less. This is a benchmark, not a test: its figures depend on the machine and on
whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import placement_files
import psycopg
from sqlalchemy.engine import make_url

from debtflow_adapters.persistence.migrate import upgrade
from debtflow_core.ids import new_id

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
DATABASE = "debtflow_bench_imports"
AGENCY_SLUG = "bench"
BATCH = 1000
_AT = datetime(2026, 11, 1, tzinfo=UTC)
_NO_LIMITS = '{"do_not_call":false,"do_not_email":false,"do_not_text":false,' + (
    '"do_not_mail":false,"cease_communication":false}'
)


class Result(msgspec.Struct, frozen=True):
    name: str
    rows: int
    seconds: float
    client_cpu: float
    server_cpu: float
    peak_rss_mib: float | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _urls(url: str) -> tuple[str, str]:
    """The admin URL (psycopg form) and the benchmark database's URL."""
    admin = make_url(url).set(drivername="postgresql")
    bench = admin.set(database=DATABASE)
    return (
        admin.render_as_string(hide_password=False),
        bench.render_as_string(hide_password=False),
    )


def _recreate(admin_url: str, bench_url: str) -> uuid.UUID:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')
    asyncio.run(upgrade(bench_url))
    agency_id = uuid.uuid4()
    with psycopg.connect(bench_url) as connection:
        connection.execute(
            "INSERT INTO agencies (id, slug, name, created_at) VALUES (%s, %s, %s, %s)",
            (agency_id, AGENCY_SLUG, "Bench", _AT),
        )
    return agency_id


def _empty(bench_url: str) -> None:
    with psycopg.connect(bench_url) as connection:
        connection.execute("TRUNCATE accounts, debtors, import_row_errors, import_runs CASCADE")
    with psycopg.connect(bench_url, autocommit=True) as connection:
        connection.execute("CHECKPOINT")


class _ServerCpu:
    """CPU seconds the benchmark database's backends use while the block runs: their
    ``/proc/PID/stat`` times, sampled every 0.1 s (the last tenth of a second of a backend
    that exits may be missed)."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self.seconds = 0.0

    def __enter__(self) -> _ServerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = sum(self._ticks.values()) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as connection:
            while not self._stop.wait(0.1):
                query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                for (pid,) in connection.execute(query, (DATABASE,)):
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    self._ticks[pid] = int(fields[11]) + int(fields[12])


class _TreeRss:
    """The peak of a process's resident memory plus its children's (the import parses in a
    child of its own), sampled from ``/proc`` every 0.1 s."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self.peak_mib = 0.0

    def __enter__(self) -> _TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                children = Path(f"/proc/{self._pid}/task/{self._pid}/children").read_text()
                pids = [self._pid, *map(int, children.split())]
                kib = sum(_rss_kib(pid) for pid in pids)
            except OSError:
                continue
            self.peak_mib = max(self.peak_mib, kib / 1024)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _import(path: Path, bench_url: str, admin_url: str) -> Result:
    """``debtflow import`` in a process of its own; its wall time and the peak RSS of it
    and its parser together."""
    env = {**os.environ, "DEBTFLOW_DATABASE_URL": bench_url, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "debtflow_adapters.cli", "import", str(path)]
    with _ServerCpu(admin_url) as server:
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--agency", AGENCY_SLUG], env=env, stdout=subprocess.PIPE, text=True
        )
        with _TreeRss(process.pid) as memory:
            _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    summary = process.stdout.read() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"debtflow import failed:\n{summary}")
    print(summary, file=sys.stderr)
    rows = int(
        next(line for line in summary.splitlines() if "rows read" in line)
        .split()[-1]
        .replace(",", "")
    )
    return Result(
        "end to end: debtflow import",
        rows,
        seconds,
        client_cpu=usage.ru_utime + usage.ru_stime,
        server_cpu=server.seconds,
        # The sum's peak, or the largest process's when the sampling missed it.
        peak_rss_mib=max(memory.peak_mib, usage.ru_maxrss / 1024),
    )


def _valid_rows(count: int) -> Iterator[tuple[str, ...]]:
    """The generated rows that the import accepts (the generator's bad rows left out)."""
    every = round(1 / 0.01)
    for n, row in enumerate(placement_files.rows(count)):
        if n % every != every // 2:
            yield row


def _debtor(agency_id: uuid.UUID, row: tuple[str, ...]) -> tuple[object, ...]:
    address = msgspec.json.encode(
        {
            "line1": row[7],
            "line2": row[8] or None,
            "city": row[9],
            "state": row[10],
            "postal_code": row[11],
            "country": row[12],
            "time_zone": None,
        }
    ).decode()
    return (
        new_id(),
        agency_id,
        row[1],
        row[2],
        row[3],
        date.fromisoformat(row[4]),
        msgspec.json.encode([{"number": row[5], "kind": "other"}]).decode(),
        msgspec.json.encode([row[6]]).decode(),
        address,
        _NO_LIMITS,
        _AT,
        _AT,
    )


def _account(
    agency_id: uuid.UUID, debtor_id: uuid.UUID, row: tuple[str, ...], line: int
) -> tuple[object, ...]:
    balance = int(row[14].replace(".", ""))
    return (
        new_id(),
        agency_id,
        debtor_id,
        row[0],
        row[13],
        row[15],
        balance,
        balance,
        date.fromisoformat(row[16]),
        "active",
        _AT,
        _AT,
        date.fromisoformat(row[17]),
        date.fromisoformat(row[18]),
        date.fromisoformat(row[19]),
        line,
    )


_DEBTOR_COLUMNS = (
    "id, agency_id, external_id, first_name, last_name, date_of_birth, phones, emails, "
    "address, contact_preferences, created_at, updated_at"
)
_DEBTOR_TYPES = [
    "uuid", "uuid", "text", "text", "text", "date", "jsonb", "jsonb", "jsonb", "jsonb",
    "timestamptz", "timestamptz",
]  # fmt: skip
_ACCOUNT_COLUMNS = (
    "id, agency_id, debtor_id, external_id, original_creditor, currency, placed_balance, "
    "current_balance, charge_off_date, status, placed_at, updated_at, "
    "first_delinquency_date, itemization_date, last_payment_date, import_line"
)
_ACCOUNT_TYPES = [
    "uuid", "uuid", "uuid", "text", "text", "text", "int8", "int8", "date", "text",
    "timestamptz", "timestamptz", "date", "date", "date", "int4",
]  # fmt: skip


def _measured(name: str, admin_url: str, run: Callable[[], int]) -> Result:
    """Run a reference in this process: its rows, wall time and CPU."""
    with _ServerCpu(admin_url) as server:
        cpu, started = time.process_time(), time.perf_counter()
        rows = run()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Result(name, rows, seconds, client_cpu=cpu, server_cpu=server.seconds)


def _copy(count: int, bench_url: str, agency_id: uuid.UUID) -> int:
    """(a): every valid row's debtor and account by binary COPY, debtors first."""
    rows = 0
    with psycopg.connect(bench_url) as connection, connection.cursor() as cursor:
        debtor_ids: dict[str, uuid.UUID] = {}
        with cursor.copy(f"COPY debtors ({_DEBTOR_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_DEBTOR_TYPES)
            for row in _valid_rows(count):
                if row[1] not in debtor_ids:
                    debtor = _debtor(agency_id, row)
                    debtor_ids[row[1]] = debtor[0]  # type: ignore[assignment]
                    copy.write_row(debtor)
        with cursor.copy(f"COPY accounts ({_ACCOUNT_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_ACCOUNT_TYPES)
            for line, row in enumerate(_valid_rows(count), start=2):
                copy.write_row(_account(agency_id, debtor_ids[row[1]], row, line))
                rows += 1
    return rows


_NAIVE_DEBTOR = (
    f"INSERT INTO debtors ({_DEBTOR_COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s) "
    "ON CONFLICT (agency_id, external_id) DO UPDATE SET first_name = excluded.first_name, "
    "last_name = excluded.last_name, date_of_birth = excluded.date_of_birth, "
    "phones = excluded.phones, emails = excluded.emails, address = excluded.address, "
    "updated_at = excluded.updated_at"
)
_NAIVE_ACCOUNT = (
    f"INSERT INTO accounts ({_ACCOUNT_COLUMNS}) VALUES (%s, %s, "
    "(SELECT id FROM debtors WHERE agency_id = %s AND external_id = %s), "
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (agency_id, external_id) DO UPDATE SET debtor_id = excluded.debtor_id, "
    "original_creditor = excluded.original_creditor, currency = excluded.currency, "
    "placed_balance = excluded.placed_balance, charge_off_date = excluded.charge_off_date, "
    "first_delinquency_date = excluded.first_delinquency_date, "
    "itemization_date = excluded.itemization_date, "
    "last_payment_date = excluded.last_payment_date, updated_at = excluded.updated_at"
)


def _naive(count: int, bench_url: str, agency_id: uuid.UUID) -> int:
    """(b): per 1000 rows, one transaction of executemany upserts, debtors then accounts."""
    rows = 0
    with psycopg.connect(bench_url) as connection, connection.cursor() as cursor:
        batch: list[tuple[str, ...]] = []
        for row in _valid_rows(count):
            batch.append(row)
            if len(batch) == BATCH:
                rows += _naive_batch(connection, cursor, agency_id, batch)
                batch = []
        if batch:
            rows += _naive_batch(connection, cursor, agency_id, batch)
    return rows


def _naive_batch(
    connection: psycopg.Connection,
    cursor: psycopg.Cursor,
    agency_id: uuid.UUID,
    batch: list[tuple[str, ...]],
) -> int:
    cursor.executemany(_NAIVE_DEBTOR, [_debtor(agency_id, row) for row in batch])
    accounts = []
    for row in batch:
        account = _account(agency_id, uuid.uuid4(), row, 0)
        accounts.append((account[0], agency_id, agency_id, row[1], *account[3:]))
    cursor.executemany(_NAIVE_ACCOUNT, accounts)
    connection.commit()
    return len(batch)


def _table(results: list[Result], copy: Result, naive: Result) -> str:
    lines = [
        "| measure | rows | seconds | rows/s | of (a) | x (b) | peak RSS "
        "| client CPU | server CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        rss = "-" if result.peak_rss_mib is None else f"{result.peak_rss_mib:.0f} MiB"
        lines.append(
            f"| {result.name} | {result.rows:,} | {result.seconds:.1f} | {result.rate:,.0f} "
            f"| {result.rate / copy.rate:.0%} | {result.rate / naive.rate:.1f} | {rss} "
            f"| {result.client_cpu / result.rows * 1e6:.0f} µs/row "
            f"| {result.server_cpu / result.rows * 1e6:.0f} µs/row |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "DEBTFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres"
        ),
        help="a PostgreSQL superuser URL; the benchmark database is made beside it",
    )
    args = parser.parse_args()
    admin_url, bench_url = _urls(args.url)
    with tempfile.TemporaryDirectory(prefix="debtflow-bench-") as directory:
        path = placement_files.write(Path(directory) / "placement.csv", args.rows)
        size = path.stat().st_size
        agency_id = _recreate(admin_url, bench_url)
        _empty(bench_url)
        end_to_end = _import(path, bench_url, admin_url)
        _empty(bench_url)
        copy = _measured(
            "(a) binary COPY FROM STDIN",
            admin_url,
            lambda: _copy(args.rows, bench_url, agency_id),
        )
        _empty(bench_url)
        naive = _measured(
            "(b) executemany INSERT … ON CONFLICT",
            admin_url,
            lambda: _naive(args.rows, bench_url, agency_id),
        )
    print(
        f"{args.rows:,} rows ({size / 2**20:.0f} MiB), {platform.python_version()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(_table([end_to_end, copy, naive], copy, naive))


if __name__ == "__main__":
    main()
