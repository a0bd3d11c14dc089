"""Benchmark the account reads of the HTTP API against PostgreSQL, and record the results.

    python bench/http_accounts.py [--accounts 1000000] [--duration 20] [--connections 32]

It recreates the database ``debtflow_bench``, migrates and seeds it (see ``seeding.py``),
serves the API with ``debtflow serve --workers 2`` and a bare Litestar route returning one
of the API's pages from memory (``bare_app.py``) the same way, loads both with wrk, prints
a table and rewrites the section "HTTP: account reads" of ``docs/benchmarks.md`` (unless
``--no-document``).

This is a benchmark, not a test: nothing runs it in CI, and its figures depend on the
machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psycopg
import seeding
import serving
import wrk
from serving import BENCH, DOCUMENT, SOURCES
from sqlalchemy.engine import make_url

SECTION = "## HTTP: account reads"

DATABASE = "debtflow_bench"
API_PORT = 8701
BARE_PORT = 8702
WORKERS = 2
THREADS = 2
WARM_UP_SECONDS = 5
LIST_QUERY = "/v1/accounts?status=active&limit=50"
P99_TARGET_MS = 50.0
BARE_SHARE_TARGET = 0.4


@dataclass(frozen=True)
class Target:
    """One benchmarked request: what is asked, by whom, with which access token, and the
    process of the server that answers."""

    request: str
    caller: str
    url: str
    token: str | None
    server_pid: int
    judged: bool = True


@dataclass(frozen=True)
class Measured:
    target: Target
    result: wrk.Result
    cpu_ms_per_request: float
    """CPU time the server's processes spent per request: it depends much less than the
    throughput on what else runs on the machine."""


def main() -> None:
    args = _arguments()
    admin_url = args.postgres_url
    url = make_url(admin_url).set(database=DATABASE).render_as_string(hide_password=False)
    load = wrk.Load(threads=THREADS, connections=args.connections, duration=args.duration)
    if args.reuse_database:
        _check_seeded(url, args.accounts)
    else:
        _prepare_database(admin_url, url, args.accounts)
    machine = serving.machine(admin_url)
    reach = _reach(url)
    with tempfile.TemporaryDirectory(prefix="debtflow-bench-") as scratch:
        measured, commands = _benchmark(url, load, Path(scratch))
    report = _report(args, machine, reach, load, measured, commands)
    print(report)
    if args.no_document:
        return
    serving.write_section(SECTION, report)
    print(f"wrote the section {SECTION!r} of {DOCUMENT}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts to seed")
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a superuser's connection to the server; the benchmark database is made there",
    )
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help=f"keep the {DATABASE} database a previous run seeded with as many accounts",
    )
    parser.add_argument(
        "--no-document",
        action="store_true",
        help="print the report only, leaving docs/benchmarks.md as it is (a busy machine)",
    )
    return parser.parse_args()


def _prepare_database(admin_url: str, url: str, accounts: int) -> None:
    started = time.perf_counter()
    seeding.recreate_database(admin_url, DATABASE)
    seeding.migrate(url)
    serving.log(f"created and migrated {DATABASE} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    seeding.seed(url, accounts)
    serving.log(f"seeded {accounts:,} accounts in {time.perf_counter() - started:.1f} s")


@dataclass(frozen=True)
class Reach:
    """How many active accounts the benchmarked callers' lists page through."""

    collector: int
    admin: int


def _reach(url: str) -> Reach:
    with psycopg.connect(url) as connection:
        collector, admin = connection.execute(
            "SELECT count(*) FILTER (WHERE a.assigned_collector_id = u.id), count(*)"
            " FROM accounts a JOIN users u ON u.agency_id = a.agency_id"
            " WHERE u.email = %s AND a.status = 'active'",
            [seeding.collector_login(1, 1).email],
        ).fetchone()
    return Reach(collector=collector, admin=admin)


def _check_seeded(url: str, accounts: int) -> None:
    """Refuse to measure a database that does not hold what the report will say it holds."""
    with psycopg.connect(url) as connection:
        (count,) = connection.execute("SELECT count(*) FROM accounts").fetchone()
    if count != accounts:
        sys.exit(
            f"{DATABASE} holds {count:,} accounts, not {accounts:,}: "
            "run without --reuse-database to seed it again"
        )


def _api_server(url: str) -> serving.Server:
    """``debtflow serve`` on the benchmark database, logging warnings only."""
    return serving.Server(
        command=[serving.debtflow(), "serve", "--workers", str(WORKERS), "--port", str(API_PORT)],
        env={
            # This checkout's code, even when the virtualenv was installed from another one.
            "PYTHONPATH": str(SOURCES),
            "DEBTFLOW_DATABASE_URL": url,
            "DEBTFLOW_JWT_SECRET": secrets.token_urlsafe(48),
            "DEBTFLOW_LOG_LEVEL": "warning",
        },
        port=API_PORT,
        ready_path="/health",
    )


def _bare_server(body: Path) -> serving.Server:
    """The bare route under uvicorn, as many workers as the API and as quiet."""
    return serving.Server(
        command=[
            *(sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(BENCH)),
            *("--workers", str(WORKERS), "--port", str(BARE_PORT)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        env={"BENCH_BARE_BODY": str(body)},
        port=BARE_PORT,
        ready_path="/v1/accounts",
    )


def _benchmark(url: str, load: wrk.Load, scratch: Path) -> tuple[list[Measured], list[str]]:
    """Serve the API and the bare route and measure every target; return the results and
    the commands that produced them (secrets left out)."""
    api = _api_server(url)
    listing = f"{api.base_url}{LIST_QUERY}"
    with serving.running(api, scratch / "api.log") as api_pid:
        collector = serving.sign_in(api.base_url, seeding.collector_login(1, 1))
        admin = serving.sign_in(api.base_url, seeding.admin_login(1))
        page = _get(listing, admin)
        one = f"{api.base_url}/v1/accounts/{msgspec.json.decode(page)['items'][0]['id']}"
        (scratch / "page.json").write_bytes(page)
        bare = _bare_server(scratch / "page.json")
        with serving.running(bare, scratch / "bare.log") as bare_pid:
            yardstick = f"{bare.base_url}/v1/accounts"
            targets = [
                Target("bare route, the same JSON", "-", yardstick, None, bare_pid, False),
                Target("GET /health", "-", f"{api.base_url}/health", None, api_pid, False),
                Target(f"GET {LIST_QUERY}", "collector", listing, collector, api_pid),
                Target(f"GET {LIST_QUERY}", "agency admin", listing, admin, api_pid),
                Target("GET /v1/accounts/{id}", "agency admin", one, admin, api_pid),
            ]
            measured = [_measure(target, load) for target in targets]
    commands = [
        api.shown(PYTHONPATH="src", DEBTFLOW_JWT_SECRET="…"),
        bare.shown(BENCH_BARE_BODY="page.json"),
        *(wrk.printable(t.url, load, authorized=t.token is not None) for t in targets),
    ]
    return measured, commands


def _measure(target: Target, load: wrk.Load) -> Measured:
    """A short unrecorded run first (connection pools, caches), then the measured one."""
    serving.log(f"measuring {target.request} as {target.caller}")
    wrk.run(target.url, wrk.Load(load.threads, load.connections, WARM_UP_SECONDS), target.token)
    cpu_before = serving.cpu_seconds(target.server_pid)
    result = wrk.run(target.url, load, target.token)
    cpu_spent = serving.cpu_seconds(target.server_pid) - cpu_before
    return Measured(target, result, cpu_ms_per_request=cpu_spent * 1000 / result.requests)


def _get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return response.read()


def _report(
    args: argparse.Namespace,
    machine: str,
    reach: Reach,
    load: wrk.Load,
    measured: list[Measured],
    commands: list[str],
) -> str:
    shown_commands = "\n".join(commands)
    one_command = (
        f"python bench/http_accounts.py --accounts {args.accounts}"
        f" --duration {args.duration} --connections {args.connections}"
    )
    return f"""{SECTION}

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}.

{args.accounts:,} accounts over {seeding.AGENCIES} agencies, about 70 % of them active,
a fifth assigned to one of {seeding.COLLECTORS_PER_AGENCY} collectors per agency.
Each request is loaded by wrk ({load.threads} threads, {load.connections} connections)
for {load.duration} s, after an unrecorded {WARM_UP_SECONDS} s warm-up.
The collector's list pages through the {reach.collector:,} active accounts assigned to them,
the admin's through the agency's {reach.admin:,};
the single account is the first of the admin's page.

{_table(measured)}

The targets: a p99 under {P99_TARGET_MS:.0f} ms,
and at least {BARE_SHARE_TARGET:.0%} of the requests per second of the bare route.
That route answers the same JSON bytes (the admin's page of 50 accounts, fetched once from
the API) from memory, with Litestar under uvicorn and {WORKERS} workers like the API,
and nothing else: no authentication, no database.
`GET /health` is the API's own floor: its middleware (request id, security headers,
metrics) and dishka's request scope around a route that reads nothing, without a token.
wrk, PostgreSQL and the servers share the machine's cores.
The last column is the CPU time the server's processes used during the run,
divided by the requests answered.

The API runs with `DEBTFLOW_LOG_LEVEL=warning`:
at `info` it writes a JSON access-log line per request, which would be part of what is
measured.

The one command, from the repository root in the project's virtualenv
(`--reuse-database` skips the seeding when a previous run left the same data):

```sh
{one_command}
```

What it runs once the database is seeded
(`$TOKEN`: an access token from `POST /v1/auth/token`; the JWT secret is random per run):

```sh
{shown_commands}
```
"""


def _table(measured: list[Measured]) -> str:
    """The results as a Markdown table, the bare route first, with the targets judged."""
    bare = measured[0].result.requests_per_second
    rows = [
        "| request | caller | requests/s | p50 | p99 | of bare | p99 < 50 ms | ≥ 40 % of bare"
        " | server CPU per request |",
        "| --- | --- | ---: | ---: | ---: | ---: | :---: | :---: | ---: |",
    ]
    for m in measured:
        share = m.result.requests_per_second / bare
        judged = m.target.judged
        rows.append(
            f"| {m.target.request} | {m.target.caller} | {m.result.requests_per_second:,.0f}"
            f" | {m.result.p50_ms:.1f} ms | {m.result.p99_ms:.1f} ms | {share:.1%}"
            f" | {_verdict(m.result.p99_ms < P99_TARGET_MS) if judged else '-'}"
            f" | {_verdict(share >= BARE_SHARE_TARGET) if judged else '-'}"
            f" | {m.cpu_ms_per_request:.2f} ms |"
        )
    return "\n".join(rows)


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


if __name__ == "__main__":
    main()
