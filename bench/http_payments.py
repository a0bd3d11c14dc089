"""Benchmark card payments through the HTTP API against PostgreSQL, next to their ceiling.

    python bench/http_payments.py [--accounts 100000] [--duration 20] [--connections 32]

It recreates the database ``debtflow_bench_payments``, migrates and seeds it (see
``seeding.py``), serves the API with ``debtflow serve --workers 2`` on its embedded sandbox
gateway, and has wrk post payments of one cent with a new ``Idempotency-Key`` each, spread
over the payable accounts of one agency. The ceiling is the same three writes (the payment,
the balance, the audit entry) as one transaction per payment through a plain psycopg pool,
as many at once as wrk's connections. The two alternate for ``--rounds`` rounds, so that
the machine's drift in speed (2x within an hour, at times) falls on both alike; the
verdicts are on the median round. It prints a table and rewrites the section
"HTTP: payments" of ``docs/benchmarks.md`` (unless ``--no-document``).

This is a benchmark, not a test: nothing runs it in CI, and its figures depend on the
machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median, quantiles

import psycopg
import seeding
import serving
import wrk
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from debtflow_core.ids import new_id

SECTION = "## HTTP: payments"
DATABASE = "debtflow_bench_payments"
API_PORT = 8721
WORKERS = 2
THREADS = 2
WARM_UP_SECONDS = 5
PAYABLE_ACCOUNTS = 2_000
P99_TARGET_MS = 100.0
CEILING_SHARE_TARGET = 0.5

# wrk runs this in each of its threads: every request pays one cent on a random payable
# account under a key no other request of any run uses (the run's label, the thread, a
# counter). -H headers only apply to requests wrk.format builds from wrk.headers.
PAYER = """\
local accounts = {%(accounts)s}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

function init(args)
   label = args[1]
   sent = 0
   math.randomseed(thread_id)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   sent = sent + 1
   wrk.headers["Idempotency-Key"] = label .. "-" .. thread_id .. "-" .. sent
   local account = accounts[math.random(#accounts)]
   return wrk.format(nil, nil, nil, '{"account_id":"' .. account .. '","amount":1,'
      .. '"currency":"USD","processor_id":"%(processor)s","payment_method":"pm_card_visa"}')
end
"""


@dataclass(frozen=True)
class Measured:
    path: str
    payments: int
    payments_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_payment: float | None
    """CPU time the API's processes spent per payment (none for the ceiling, which has no
    server of its own)."""


@dataclass(frozen=True)
class Payable:
    agency_id: uuid.UUID
    processor_id: uuid.UUID
    accounts: list[uuid.UUID]


def main() -> None:
    args = _arguments()
    url = make_url(args.postgres_url).set(database=DATABASE).render_as_string(False)
    if not args.reuse_database:
        _prepare_database(args.postgres_url, url, args.accounts)
    machine = serving.machine(args.postgres_url)
    load = wrk.Load(threads=THREADS, connections=args.connections, duration=args.duration)
    with tempfile.TemporaryDirectory(prefix="debtflow-bench-") as scratch:
        api, rounds = _rounds(url, load, Path(scratch), args.rounds)
    report = _report(args, machine, load, api, rounds)
    print(report)
    if args.no_document:
        return
    serving.write_section(SECTION, report)
    print(f"wrote the section {SECTION!r} of {serving.DOCUMENT}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts to seed")
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent payers")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the API then the ceiling, alternated"
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a superuser's connection to the server; the benchmark database is made there",
    )
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help=f"keep the {DATABASE} database a previous run seeded (payments accumulate)",
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
    seeding.seed(url, accounts)
    serving.log(f"seeded {accounts:,} accounts in {time.perf_counter() - started:.1f} s")


Round = tuple[Measured, Measured]
"""The API's payments, then the ceiling's."""


def _rounds(
    url: str, load: wrk.Load, scratch: Path, rounds: int
) -> tuple[serving.Server, list[Round]]:
    """Serve the API, give agency 1 a sandbox processor, and measure its payments and the
    ceiling in turn, ``rounds`` times."""
    api = serving.Server(
        command=[serving.debtflow(), "serve", "--workers", str(WORKERS), "--port", str(API_PORT)],
        env={
            "PYTHONPATH": str(serving.SOURCES),
            "DEBTFLOW_DATABASE_URL": url,
            "DEBTFLOW_JWT_SECRET": secrets.token_urlsafe(48),
            "DEBTFLOW_LOG_LEVEL": "warning",
        },
        port=API_PORT,
        ready_path="/health",
    )
    with serving.running(api, scratch / "api.log") as api_pid:
        token = serving.sign_in(api.base_url, seeding.admin_login(1))
        processor = serving.call(
            api.base_url,
            "POST",
            "/v1/payment-processors",
            {"name": f"Bench sandbox {time.time_ns()}", "kind": "sandbox"},
            token,
        )
        payable = _payable(url, uuid.UUID(processor["agency_id"]), uuid.UUID(processor["id"]))
        script = scratch / "payer.lua"
        script.write_text(
            PAYER
            % {
                "accounts": ", ".join(f'"{id_}"' for id_ in payable.accounts),
                "processor": payable.processor_id,
            }
        )
        target = f"{api.base_url}/v1/payments"
        label = f"bench-{time.time_ns()}"
        serving.log("warming up the API")
        warm_up = wrk.Load(load.threads, load.connections, WARM_UP_SECONDS, script, (label + "w",))
        wrk.run(target, warm_up, token)
        measured: list[Round] = []
        for number in range(1, rounds + 1):
            serving.log(f"round {number}: measuring POST /v1/payments")
            measured_load = wrk.Load(
                load.threads, load.connections, load.duration, script, (f"{label}-{number}",)
            )
            cpu_before = serving.cpu_seconds(api_pid)
            result = wrk.run(target, measured_load, token)
            cpu_spent = serving.cpu_seconds(api_pid) - cpu_before
            through_api = Measured(
                path="POST /v1/payments (API, sandbox gateway)",
                payments=result.requests,
                payments_per_second=result.requests_per_second,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                cpu_ms_per_payment=cpu_spent * 1000 / result.requests,
            )
            serving.log(f"round {number}: the ceiling, the three writes through a psycopg pool")
            ceiling = asyncio.run(_ceiling(url, payable, load.connections, load.duration))
            measured.append((through_api, ceiling))
    return api, measured


def _payable(url: str, agency_id: uuid.UUID, processor_id: uuid.UUID) -> Payable:
    """Active accounts of the agency whose balance outlasts any run of one-cent payments."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id FROM accounts WHERE agency_id = %s AND status = 'active'"
            " AND currency = 'USD' AND current_balance >= 100000 ORDER BY id LIMIT %s",
            [agency_id, PAYABLE_ACCOUNTS],
        ).fetchall()
    if not rows:
        sys.exit("no payable account in the benchmark database: seed it again")
    return Payable(agency_id, processor_id, [id_ for (id_,) in rows])


async def _ceiling(url: str, payable: Payable, connections: int, duration: int) -> Measured:
    """The same writes as a payment, without the API: insert the payment, take its amount off
    the balance, insert the audit entry — one transaction each, ``connections`` at once."""
    latencies: list[float] = []
    async with AsyncConnectionPool(
        url, min_size=connections, max_size=connections, open=False
    ) as pool:
        await pool.wait()
        deadline = time.perf_counter() + duration

        async def payer(number: int) -> None:
            rng = random.Random(number)
            while (started := time.perf_counter()) < deadline:
                async with pool.connection() as connection:  # commits on leaving
                    await _pay(connection, payable, rng.choice(payable.accounts))
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(payer(number) for number in range(connections)))
        elapsed = time.perf_counter() - began
    percentiles = quantiles(latencies, n=100, method="inclusive")
    return Measured(
        path="the same three writes, one transaction each (psycopg pool)",
        payments=len(latencies),
        payments_per_second=len(latencies) / elapsed,
        p50_ms=percentiles[49] * 1000,
        p99_ms=percentiles[98] * 1000,
        cpu_ms_per_payment=None,
    )


async def _pay(
    connection: psycopg.AsyncConnection, payable: Payable, account_id: uuid.UUID
) -> None:
    now = datetime.now(UTC)
    payment_id = new_id()
    await connection.execute(
        "INSERT INTO payments (id, agency_id, account_id, processor_id, amount, currency,"
        " payment_method, status, idempotency_key, gateway_reference, failure_code,"
        " failure_message, refunded_amount, created_by, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, 1, 'USD', 'pm_card_visa', 'completed', %s, %s,"
        " NULL, NULL, 0, NULL, %s, %s)",
        [
            payment_id,
            payable.agency_id,
            account_id,
            payable.processor_id,
            str(payment_id),
            f"pi_{payment_id.hex}",
            now,
            now,
        ],
    )
    await connection.execute(
        "UPDATE accounts SET current_balance = current_balance - 1, updated_at = %s WHERE id = %s",
        [now, account_id],
    )
    await connection.execute(
        "INSERT INTO audit_log (id, agency_id, actor_id, action, entity_type, entity_id,"
        " before, after, occurred_at) VALUES (%s, %s, NULL, 'payment.completed', 'payment',"
        " %s, %s, %s, %s)",
        [
            new_id(),
            payable.agency_id,
            payment_id,
            Jsonb({}),
            Jsonb({"status": "completed", "amount": 1}),
            now,
        ],
    )


def _report(
    args: argparse.Namespace,
    machine: str,
    load: wrk.Load,
    api: serving.Server,
    rounds: list[Round],
) -> str:
    one_command = (
        f"python bench/http_payments.py --accounts {args.accounts}"
        f" --duration {args.duration} --connections {args.connections} --rounds {args.rounds}"
    )
    payer_load = wrk.Load(
        load.threads, load.connections, load.duration, Path("payer.lua"), ("LABEL",)
    )
    return f"""{SECTION}

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}.

{args.accounts:,} accounts over {seeding.AGENCIES} agencies. wrk ({load.threads} threads,
{load.connections} connections, {load.duration} s after an unrecorded {WARM_UP_SECONDS} s
warm-up) posts payments of one cent, each with an `Idempotency-Key` of its own, as the
admin of one agency, spread over {PAYABLE_ACCOUNTS:,} of its active accounts; the sandbox
gateway answers at once. Every payment is the whole flow: the idempotency claim, the
pending payment with its hold on the balance and its audit entry (one transaction), the
gateway call, then the completion with its audit entry and the stored response (a second
transaction).

The ceiling does only the three writes a payment cannot do without (the payment, the
balance, the audit entry) as one transaction per payment through a psycopg pool of
{args.connections} connections, {args.connections} payers at once, for {args.duration} s.
The API and the ceiling take turns, {len(rounds)} rounds of each, so that a change in the
machine's speed weighs on both.

{_table(rounds)}

The targets: at least {CEILING_SHARE_TARGET:.0%} of the ceiling's payments per second and a
p99 under {P99_TARGET_MS:.0f} ms. wrk, PostgreSQL and the API share the machine's cores;
the last column is the CPU time the API's processes used per payment.

The one command, from the repository root in the project's virtualenv:

```sh
{one_command}
```

What it runs once the database is seeded (`$TOKEN`: the agency admin's access token;
`payer.lua`: the script in `bench/http_payments.py`, filled with the accounts and the
processor; `LABEL`: new for every run, so that no key repeats):

```sh
{api.shown(PYTHONPATH="src", DEBTFLOW_JWT_SECRET="…")}
{wrk.printable(f"{api.base_url}/v1/payments", payer_load, authorized=True)}
```
"""


def _table(rounds: list[Round]) -> str:
    rows = [
        "| round | path | payments | payments/s | p50 | p99 | server CPU per payment |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, measured in enumerate(rounds, 1):
        for m in measured:
            cpu = "-" if m.cpu_ms_per_payment is None else f"{m.cpu_ms_per_payment:.2f} ms"
            rows.append(
                f"| {number} | {m.path} | {m.payments:,} | {m.payments_per_second:,.0f}"
                f" | {m.p50_ms:.1f} ms | {m.p99_ms:.1f} ms | {cpu} |"
            )
    shares = [api.payments_per_second / ceiling.payments_per_second for api, ceiling in rounds]
    share, p99 = median(shares), median(api.p99_ms for api, _ in rounds)
    verdicts = (
        f"Of the ceiling, the API reached {', '.join(f'{each:.0%}' for each in shares)}:"
        f" {share:.0%} in the median round"
        f" (target {CEILING_SHARE_TARGET:.0%}: {_verdict(share >= CEILING_SHARE_TARGET)}),"
        f" with a median p99 of {p99:.0f} ms"
        f" (target under {P99_TARGET_MS:.0f} ms: {_verdict(p99 < P99_TARGET_MS)})."
    )
    return "\n".join(rows) + "\n\n" + verdicts


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


if __name__ == "__main__":
    main()
