"""The ``debtflow`` command line: operator tasks on the database the settings name, and the
API server.

Each command decodes its arguments, calls core use cases from the container (or starts the
server) and prints the outcome; the rules live in the use cases, the demo data in
:mod:`debtflow_adapters.demo`. A failure is one line on standard error,
``debtflow: error: …``, with exit status 2 for bad input or configuration and 1 for
anything else (a conflict, a missing agency, a database that cannot be reached).

Passwords are never taken from the command line, where other users of the machine can see
them in the process list and the shell keeps them in its history.

What only some commands use (Alembic, the container, Redis, taskiq's scheduler, uvicorn) is
imported by them: every process ``serve --workers N`` starts imports this module again
before it answers uvicorn's health check, and the other commands start sooner.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from debtflow_adapters import demo
from debtflow_adapters.logs import configure_logging
from debtflow_adapters.prometheus.multiprocess import MULTIPROC_DIR, prepare_multiprocess_dir
from debtflow_adapters.settings import (
    Settings,
    SettingsError,
    parse_forwarded_allow_ips,
    parse_port,
    parse_workers,
    redact,
    scheduler_conflicts,
)
from debtflow_core.actor import Actor
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.imports import ImportRowError, ImportRun, ImportStatus
from debtflow_core.domain.user import Role
from debtflow_core.errors import DomainError, ValidationFailed
from debtflow_core.ports.clock import Clock
from debtflow_core.use_cases.agencies import CreateAgency, FindAgency, NewAgency
from debtflow_core.use_cases.imports import (
    CheckPlacementFile,
    ImportFile,
    ImportPlacementFile,
    ImportProgress,
    ListImportErrors,
    PlacementCheck,
)
from debtflow_core.use_cases.users import CreateUser, NewUser

if TYPE_CHECKING:
    from dishka import AsyncContainer

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

APP_FACTORY = "debtflow_http.app:create_app"
"""The API, named rather than imported: uvicorn needs an import string to start several
worker processes, and the adapters may not import the HTTP layer that sits above them."""

WORKER_BROKER = "debtflow_worker.app:broker"
WORKER_SCHEDULER = "debtflow_worker.app:scheduler"
"""The worker's broker and scheduler, named for taskiq's command line (like
:data:`APP_FACTORY`): the adapters may not import the worker above them."""

WORKER_PROCESS = "debtflow_adapters.worker_process"
"""taskiq's worker, with DebtFlow's JSON logging and metrics endpoint set up first."""

WAIT_FOR_TASKS_SECONDS = 30
"""On SIGTERM a worker takes no new job and gives the running ones this long to finish."""

SERVER_HEALTHCHECK_SECONDS = 60
"""How long uvicorn waits for a server worker process to answer its health check before it
kills it and starts another, and for a worker it restarts (SIGHUP) to start serving. Its
default, 5 s, is less than a worker takes to start on a busy machine (6 to 17 s were
measured on two loaded cores): it killed every new worker before it answered, for ever."""

Command = Callable[[Settings, argparse.Namespace], None]
AsyncCommand = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]


class InputError(Exception):
    """The operator's input cannot be used (a password that was not confirmed, say)."""


class Unreachable(Exception):
    """A service the command needs does not answer (the broker's Redis)."""


class MigrationFailed(Exception):
    """Alembic could not bring the schema up to date (a revision this release does not
    know, say): its message's first line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return the process's exit status."""
    args = _parser().parse_args(argv)
    command: Command = args.command
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        return _fail(str(error), EXIT_USAGE)
    try:
        command(settings, args)
    except InputError as error:
        return _fail(str(error), EXIT_USAGE)
    except Unreachable as error:
        return _fail(str(error), EXIT_FAILURE)
    except ValidationFailed as error:
        return _fail(f"{error.field}: {error.detail}" if error.field else error.detail, EXIT_USAGE)
    except DomainError as error:
        return _fail(error.detail, EXIT_FAILURE)
    except SQLAlchemyError as error:
        reason = _first_line(getattr(error, "orig", None) or error)
        return _fail(f"database {_location(settings)}: {reason}", EXIT_FAILURE)
    except MigrationFailed as error:
        return _fail(f"migrating {_location(settings)} failed: {error}", EXIT_FAILURE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


def _fail(message: str, status: int) -> int:
    print(f"debtflow: error: {redact(message)}", file=sys.stderr)
    return status


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="debtflow",
        description="Operate a DebtFlow installation.",
        epilog=(
            "Configuration comes from the environment: DEBTFLOW_DATABASE_URL (default "
            "sqlite+aiosqlite:///debtflow.db in the working directory; memory:// keeps "
            "everything in the process) and DEBTFLOW_REDIS_URL (optional); the server also "
            "reads DEBTFLOW_JWT_SECRET, DEBTFLOW_LOG_LEVEL, DEBTFLOW_CORS_ORIGINS and "
            "DEBTFLOW_HTTP_HOST, _PORT and _WORKERS; the worker and scheduler DEBTFLOW_BROKER_URL "
            "and DEBTFLOW_SETTLE_AFTER_SECONDS; payments DEBTFLOW_STRIPE_API_KEY, "
            "_API_BASE and _WEBHOOK_SECRET. Run 'debtflow migrate' before the other "
            "commands ('demo' does it itself), and after every upgrade."
        ),
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    def command(
        name: str, run: Command, summary: str, details: str = ""
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=f"{summary} {details}".rstrip())
        sub.set_defaults(command=run)
        return sub

    command(
        "migrate",
        _in_event_loop(_migrate),
        "Bring the database schema up to date.",
        "On PostgreSQL, also create the audit log's partitions for the coming months.",
    )
    agency = command("create-agency", _in_event_loop(_create_agency), "Open a new agency.")
    agency.add_argument("--slug", required=True, help="short name: lower-case letters, digits, -")
    agency.add_argument("--name", required=True, help="the agency's display name")
    user = command(
        "create-user",
        _in_event_loop(_create_user),
        "Add a user to an agency.",
        "The password is asked for twice on a terminal, otherwise read as one line from "
        "standard input; never give it on the command line.",
    )
    user.add_argument("--agency", required=True, metavar="SLUG", help="the agency's slug")
    user.add_argument("--email", required=True, help="the address the user signs in with")
    user.add_argument("--role", required=True, help=", ".join(Role))
    user.add_argument("--name", metavar="FULL_NAME", help="the user's name (default: the email)")
    command(
        "seed-demo",
        _in_event_loop(_seed_demo),
        "Create the demo agency with fictional data.",
        f"The agency {demo.SLUG!r} gets an admin, two collectors, a read-only user, "
        f"{demo.DEBTORS} debtors, {demo.ACCOUNTS} accounts and their activities. If it "
        "exists already, nothing changes. Run 'debtflow migrate' first; 'debtflow demo' "
        "does both and serves the API too.",
    )
    placement = command(
        "import",
        _in_event_loop(_import),
        "Import a placement file (CSV) into an agency, in this process.",
        "The format is described in docs/placement-format.md. The same content imports "
        "once per agency, whatever the file's name; a run interrupted midway resumes when "
        "the command is run again. Progress goes to standard error, a summary to standard "
        "output; the exit status is 1 if the run failed as a whole.",
    )
    placement.add_argument("file", metavar="FILE", type=Path, help="the placement file")
    placement.add_argument("--agency", required=True, metavar="SLUG", help="the agency's slug")
    placement.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every row and report, writing nothing",
    )
    placement.add_argument(
        "--delimiter",
        default=",",
        metavar="CHAR",
        type=_delimiter,
        help="the field separator (default: ,)",
    )
    servers = (
        command(
            "serve",
            _serve,
            "Serve the HTTP API until Ctrl-C or SIGTERM.",
            "Interactive documentation is at /schema/swagger. Without DEBTFLOW_JWT_SECRET a "
            "random key signs the access tokens, and they stop working when the server "
            "restarts.",
        ),
        command(
            "demo",
            _demo,
            "Migrate, seed the demo agency, show its logins, and serve the API until Ctrl-C.",
            "The quickest way to try DebtFlow: with no configuration it works on a SQLite "
            "file in the current directory. Seeding is skipped if the demo agency exists. "
            "Takes the options of 'serve'.",
        ),
    )
    worker = command(
        "worker",
        _worker,
        "Run the background tasks sent to DEBTFLOW_BROKER_URL, until Ctrl-C or SIGTERM.",
        "Start as many as you like, on any machine that reaches Redis and the database. On "
        f"SIGTERM a worker takes no new job and lets running ones finish (up to "
        f"{WAIT_FOR_TASKS_SECONDS} s). Without DEBTFLOW_BROKER_URL there is no worker: "
        "'debtflow serve' runs the tasks itself.",
    )
    worker.add_argument(
        "--workers",
        dest="task_workers",
        metavar="N",
        type=_flag(parse_workers),
        default=1,
        help="how many processes run tasks (default: 1)",
    )
    command(
        "scheduler",
        _scheduler,
        "Send the scheduled tasks (and the retries that are due) to the workers.",
        "Run exactly ONE scheduler per installation, or every scheduled task runs once per "
        "scheduler. Needs DEBTFLOW_BROKER_URL, like the workers.",
    )
    for server in servers:
        server.add_argument(
            "--host",
            dest="http_host",
            metavar="HOST",
            help=f"the address to listen on (default: DEBTFLOW_HTTP_HOST, else "
            f"{Settings.http_host}; 0.0.0.0 for every interface)",
        )
        server.add_argument(
            "--port",
            dest="http_port",
            metavar="PORT",
            type=_flag(parse_port),
            help=f"the TCP port (default: DEBTFLOW_HTTP_PORT, else {Settings.http_port})",
        )
        server.add_argument(
            "--workers",
            dest="http_workers",
            metavar="N",
            type=_flag(parse_workers),
            help=f"how many processes serve requests (default: DEBTFLOW_HTTP_WORKERS, else "
            f"{Settings.http_workers}); more than one share the sign-in throttle only "
            "through DEBTFLOW_REDIS_URL",
        )
        server.add_argument(
            "--forwarded-allow-ips",
            dest="forwarded_allow_ips",
            metavar="IPS",
            type=_flag(parse_forwarded_allow_ips),
            help="the comma-separated addresses or networks of the reverse proxies whose "
            "X-Forwarded-For names the client, * for any, '' for none (default: "
            f"DEBTFLOW_FORWARDED_ALLOW_IPS, else {','.join(Settings.forwarded_allow_ips)})",
        )
    return parser


T = TypeVar("T")


def _flag(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError message becomes the usage error."""

    def flag(raw: str) -> T:
        try:
            return parse(raw)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return flag


def _in_event_loop(run: AsyncCommand) -> Command:
    """A command whose work is a coroutine, run in an event loop of its own (the server
    commands cannot run inside one: uvicorn starts its own loops)."""

    def command(settings: Settings, args: argparse.Namespace) -> None:
        asyncio.run(run(settings, args))

    return command


@asynccontextmanager
async def _request(settings: Settings) -> AsyncIterator[AsyncContainer]:
    """One request scope of a fresh container, which is closed (engine disposed) after."""
    from debtflow_adapters.composition import make_container

    container = make_container(settings)
    try:
        async with container() as request:
            yield request
    finally:
        await container.close()


async def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    if settings.in_memory:
        print("the in-memory store has no schema to migrate")
        return
    await _upgrade(settings)
    print(f"migrated {_location(settings)} to the latest schema")


async def _upgrade(settings: Settings) -> None:
    """Apply the pending migrations, then top up the audit log's monthly partitions (on
    PostgreSQL), so that a deployment that only ever runs ``migrate`` still has them."""
    from alembic.util import CommandError
    from sqlalchemy.ext.asyncio import AsyncEngine

    from debtflow_adapters.persistence import create_audit_partitions
    from debtflow_adapters.persistence.migrate import upgrade

    try:
        await upgrade(settings.database_url)
    except CommandError as error:
        raise MigrationFailed(_first_line(error)) from None
    async with _request(settings) as request:
        await create_audit_partitions(await request.get(AsyncEngine))


async def _create_agency(settings: Settings, args: argparse.Namespace) -> None:
    async with _request(settings) as request:
        create_agency = await request.get(CreateAgency)
        agency = await create_agency.execute(NewAgency(slug=args.slug, name=args.name))
    print(f"created agency {agency.slug!r} ({agency.name}), id {agency.id}")


async def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    password = _read_password()
    async with _request(settings) as request:
        agency = await (await request.get(FindAgency)).execute(args.agency)
        create_user = await request.get(CreateUser)
        user = await create_user.execute(
            Actor.system(agency.id),
            NewUser(
                email=args.email,
                full_name=args.name or args.email,
                role=args.role,
                password=password,
            ),
        )
    print(f"created {user.role} {user.email!r} in agency {agency.slug!r}, id {user.id}")


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise InputError("the two passwords differ")
        return password
    line = sys.stdin.readline()
    if not line:
        raise InputError("no password: give it as one line on standard input")
    return line.removesuffix("\n").removesuffix("\r")


async def _seed_demo(settings: Settings, args: argparse.Namespace) -> None:
    async with _request(settings) as request:
        agency = await demo.seed(request)
        if agency is None:
            print(f"the demo agency {demo.SLUG!r} already exists; nothing was changed")
            return
        summary = await demo.summarize(request, agency)
    print(
        f"seeded the demo agency {demo.SLUG!r}: {summary.users} users, {summary.debtors} "
        f"debtors, {sum(summary.accounts.values())} accounts, {summary.activities} activities"
    )


_SHOWN_ERRORS = 10


def _delimiter(raw: str) -> str:
    if len(raw) != 1 or raw in '"\r\n':
        raise argparse.ArgumentTypeError("one character, not a double quote or a line break")
    return raw


class _Progress:
    """Rows read, errors and rows per second on standard error, redrawn on one line when
    it is a terminal, else a line every 100,000 rows."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._tty = sys.stderr.isatty()
        self._reported = 0

    def __call__(self, progress: ImportProgress) -> None:
        if not self._tty and progress.rows_read - self._reported < 100_000:
            return
        self._reported = progress.rows_read
        rate = progress.rows_read / max(time.monotonic() - self._started, 1e-9)
        line = (
            f"{progress.rows_read:,} rows read, {progress.rows_failed:,} errors, {rate:,.0f} rows/s"
        )
        print(
            f"\r{line}" if self._tty else line,
            end="" if self._tty else "\n",
            file=sys.stderr,
            flush=True,
        )

    def done(self) -> float:
        if self._tty and self._reported:
            print(file=sys.stderr)
        return time.monotonic() - self._started


async def _import(settings: Settings, args: argparse.Namespace) -> None:
    path: Path = args.file
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give the placement file itself")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    command = ImportFile(path=path, file_name=path.name, delimiter=args.delimiter)
    progress = _Progress()
    try:
        await _run_import(settings, args, command, progress)
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None


async def _run_import(
    settings: Settings, args: argparse.Namespace, command: ImportFile, progress: _Progress
) -> None:
    path = command.path
    async with _request(settings) as request:
        agency = await (await request.get(FindAgency)).execute(args.agency)
        if args.dry_run:
            check = await (await request.get(CheckPlacementFile)).execute(
                command, progress, max_errors=_SHOWN_ERRORS
            )
            _print_check(path, check, progress.done())
            return
        actor = Actor.system(agency.id)
        asked_at = (await request.get(Clock)).now()
        run = await (await request.get(ImportPlacementFile)).execute(actor, command, progress)
        errors = await (await request.get(ListImportErrors)).execute(
            actor, run.id, limit=_SHOWN_ERRORS
        )
    if run.created_at < asked_at:  # the content was imported before: that run is the answer
        print(
            f"{path.name} holds the content (sha256 {run.sha256[:12]}...) of an earlier "
            f"import, of {run.file_name} on {run.created_at:%Y-%m-%d %H:%M} UTC: "
            "nothing was imported again."
        )
    _print_run(path, agency, run, errors.items, progress.done())
    if run.status == ImportStatus.FAILED:
        raise DomainError(f"the import of {path.name} failed: {run.failure_reason}")


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {name:<15}  {value}" for name, value in rows)


def _rate(rows: int, seconds: float) -> str:
    return f"{seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)"


def _print_errors(errors: list[ImportRowError], total: int) -> None:
    if not errors:
        return
    shown = f"the first {len(errors)}" if total > len(errors) else "all"
    print(f"Row errors ({shown} of {total:,}):")
    for error in errors:
        value = "" if error.value is None else f" (value: {error.value})"
        print(f"  line {error.line}: {error.column or 'row'}: {error.reason}{value}")


def _print_run(
    path: Path, agency: Agency, run: ImportRun, errors: list[ImportRowError], seconds: float
) -> None:
    rows = [
        ("run", str(run.id)),
        ("agency", agency.slug),
        ("file", f"{path.name} (sha256 {run.sha256[:12]}...)"),
        ("status", run.status.value),
        ("rows read", f"{run.rows_read:,}"),
        ("created", f"{run.rows_created:,}"),
        ("updated", f"{run.rows_updated:,}"),
        ("failed", f"{run.rows_failed:,}"),
        ("time", _rate(run.rows_read, seconds)),
    ]
    if run.ignored_columns:
        rows.append(("ignored columns", ", ".join(run.ignored_columns)))
    if run.failure_reason:
        rows.append(("reason", run.failure_reason))
    print(f"Import of {path.name}:\n{_table(rows)}")
    _print_errors(errors, run.rows_failed)


def _print_check(path: Path, check: PlacementCheck, seconds: float) -> None:
    rows = [
        ("file", f"{path.name} (sha256 {check.sha256[:12]}...)"),
        ("rows read", f"{check.rows_read:,}"),
        ("valid", f"{check.rows_valid:,}"),
        ("failed", f"{check.rows_failed:,}"),
        ("time", _rate(check.rows_read, seconds)),
    ]
    if check.ignored_columns:
        rows.append(("ignored columns", ", ".join(check.ignored_columns)))
    if check.failure_reason:
        rows.append(("reason", check.failure_reason))
    print(f"Dry run of {path.name} (nothing written):\n{_table(rows)}")
    _print_errors(check.errors, check.rows_failed)
    if check.failure_reason:
        raise DomainError(f"{path.name} cannot be imported: {check.failure_reason}")


def _demo(settings: Settings, args: argparse.Namespace) -> None:
    settings = _server_settings(settings, args)
    seeded, agency, summary = asyncio.run(_migrate_and_seed_demo(settings))
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(summary.accounts.items()))
    logins = "\n".join(
        f"  {login.email:<26} {login.password:<24} {login.role}" for login in demo.LOGINS
    )
    admin = demo.LOGINS[0]
    credentials = json.dumps({"email": admin.email, "password": admin.password})
    token_url = f"{settings.listen_url}/v1/auth/token"
    print(
        f"{'Seeded' if seeded else 'Found'} the demo agency {agency.name!r} (slug {demo.SLUG!r})\n"
        f"  database    {_location(settings)}\n"
        f"  users       {summary.users}\n"
        f"  debtors     {summary.debtors}\n"
        f"  accounts    {sum(summary.accounts.values())} ({statuses})\n"
        f"  activities  {summary.activities}\n"
        f"Demo logins (e-mail, password, role):\n{logins}\n"
        f"Sign in with POST {token_url}, for instance:\n"
        f"  curl -H 'Content-Type: application/json' -d '{credentials}' {token_url}\n"
        "then send the access token as 'Authorization: Bearer …', or try it all in the docs."
    )
    _run_server(settings)


async def _migrate_and_seed_demo(settings: Settings) -> tuple[bool, Agency, demo.Summary]:
    """Whether the demo agency was seeded now (rather than found), and what it holds."""
    await _upgrade(settings)
    async with _request(settings) as request:
        seeded = await demo.seed(request) is not None
        agency = await (await request.get(FindAgency)).execute(demo.SLUG)
        summary = await demo.summarize(request, agency)
    return seeded, agency, summary


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    _run_server(_server_settings(settings, args))


def _server_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with the ``--host``, ``--port``, ``--workers`` and
    ``--forwarded-allow-ips`` given. The in-memory store is refused here, before the demo
    seeds anything: every server process would build an empty store of its own."""
    if settings.in_memory:
        raise InputError(
            "the in-memory store cannot be served: each server process would start with an "
            "empty one of its own; unset DEBTFLOW_DATABASE_URL to use a SQLite file"
        )
    flags = {
        name: getattr(args, name)
        for name in ("http_host", "http_port", "http_workers", "forwarded_allow_ips")
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None})
    if settings.in_process_scheduler and (
        problems := scheduler_conflicts(settings.broker_url, settings.http_workers)
    ):
        raise InputError("; ".join(problems))
    return settings


def _run_server(settings: Settings) -> None:
    """Serve the API under uvicorn until a signal stops it (gracefully: requests in flight
    finish). Every worker process builds the app from the environment, so what the command
    line decided (the address and workers its flags gave, a generated token key) is put
    there first, for all of them to share."""
    import uvicorn

    os.environ["DEBTFLOW_HTTP_HOST"] = settings.http_host
    os.environ["DEBTFLOW_HTTP_PORT"] = str(settings.http_port)
    os.environ["DEBTFLOW_HTTP_WORKERS"] = str(settings.http_workers)
    if settings.jwt_secret_generated:
        os.environ["DEBTFLOW_JWT_SECRET"] = settings.jwt_secret
        print(
            "debtflow: warning: DEBTFLOW_JWT_SECRET is not set, so the access tokens are "
            "signed with a random key and stop working when the server restarts; set it to "
            "a secret of 32 bytes or more, e.g. from: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'",
            file=sys.stderr,
        )
    if settings.redis_url is None and settings.http_workers > 1:
        workers = settings.http_workers
        print(
            f"debtflow: warning: DEBTFLOW_REDIS_URL is not set, so each of the {workers} "
            "server processes throttles sign-ins on its own, counting only the attempts it "
            f"answers, and a client gets up to {workers} times as many before it is refused; "
            "set it to a Redis server they all share (redis://HOST:PORT/DB), or serve with "
            "one worker",
            file=sys.stderr,
        )
    if (
        settings.broker_url is None
        and settings.http_workers == 1
        and "DEBTFLOW_IN_PROCESS_SCHEDULER" not in os.environ
    ):
        # The embedded default's one process is its only possible scheduler.
        os.environ["DEBTFLOW_IN_PROCESS_SCHEDULER"] = "true"
    url = settings.listen_url
    # Several processes add their metrics up in one directory (uvicorn spawns fresh
    # interpreters, which read it from the environment when they import the metrics).
    metrics = (
        prepare_multiprocess_dir()
        if settings.http_workers > 1 or MULTIPROC_DIR in os.environ
        else None
    )
    # Flushed, so that it comes before the server's own log lines even through a pipe.
    print(f"Serving the API on {url} (docs at {url}/schema/swagger)", flush=True)
    # JSON lines from this process too: with several workers it is uvicorn's supervisor,
    # which logs a worker's death and restart, and its own errors (the port taken), and
    # builds no app that would configure its logging.
    configure_logging(settings.log_level)
    try:
        with _sigterm_interrupts():
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=settings.http_host,
                port=settings.http_port,
                workers=settings.http_workers,
                timeout_worker_healthcheck=SERVER_HEALTHCHECK_SECONDS,
                # The client's address, which login throttling counts by, comes from
                # X-Forwarded-For when the peer is a trusted proxy; anyone else could
                # forge it.
                proxy_headers=True,
                forwarded_allow_ips=list(settings.forwarded_allow_ips),
                log_config=None,  # the app logs as JSON; uvicorn must not reconfigure logging
                access_log=False,  # the app writes its own access line, with the request id
            )
    finally:
        if metrics is not None:
            shutil.rmtree(metrics, ignore_errors=True)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM interrupts the server as Ctrl-C does. uvicorn stops gracefully on either,
    then raises the signal again for the handler it found: Python's for SIGINT raises
    KeyboardInterrupt, which ``uvicorn.run`` takes for the end of serving, where SIGTERM's
    default action killed the process (status 143, as if it had not stopped cleanly) and
    skipped what follows it. With several workers uvicorn's supervisor handles both itself.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread handles signals (uvicorn captures none either)
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    _require_broker(settings, "worker")
    _run_taskiq(
        WORKER_BROKER,
        "--workers",
        str(args.task_workers),
        "--wait-tasks-timeout",
        str(WAIT_FOR_TASKS_SECONDS),
        "--no-configure-logging",  # debtflow_worker.app logs JSON lines itself
        *_taskiq_log_level(settings),
    )


def _scheduler(settings: Settings, args: argparse.Namespace) -> None:
    _require_broker(settings, "scheduler")
    asyncio.run(_schedule(settings))


def _taskiq_log_level(settings: Settings) -> tuple[str, str]:
    """taskiq's command lines set the level of its own logger (INFO unless told)."""
    return ("--log-level", settings.log_level.upper())


async def _schedule(settings: Settings) -> None:
    """taskiq's scheduler loop, stopped cleanly by SIGTERM or SIGINT: its own command line
    leaves SIGTERM to kill the process. A restarted scheduler skips the minute it starts
    in, which it may have sent already before it stopped."""
    from taskiq.cli.scheduler.args import SchedulerArgs
    from taskiq.cli.scheduler.run import run_scheduler

    loop = asyncio.get_running_loop()
    running = asyncio.create_task(
        run_scheduler(
            SchedulerArgs.from_cli(
                [
                    WORKER_SCHEDULER,
                    "--skip-first-run",
                    "--no-configure-logging",
                    *_taskiq_log_level(settings),
                ]
            )
        )
    )
    for signal_ in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_, running.cancel)
    await running


def _require_broker(settings: Settings, command: str) -> None:
    if settings.broker_url is None:
        raise InputError(
            f"DEBTFLOW_BROKER_URL is not set: the {command} shares its queue with the API "
            "through Redis (redis://HOST:PORT/DB); without one, 'debtflow serve' runs the "
            "tasks in its own process and needs no worker"
        )
    if settings.in_memory:
        raise InputError(
            f"the in-memory store cannot be shared with a {command}: unset "
            "DEBTFLOW_DATABASE_URL or point it at a database"
        )
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        raise Unreachable(
            f"the broker {settings.broker_url} does not answer: {_first_line(error)}"
        ) from None
    finally:
        client.close()


def _run_taskiq(*arguments: str) -> None:
    """Become taskiq's worker (see :data:`WORKER_PROCESS`), in a fresh interpreter with the
    same process id, so that signals reach taskiq itself."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", WORKER_PROCESS, *arguments])


def _location(settings: Settings) -> str:
    """Where the data lives, for people: a SQLite file's absolute path, else the URL."""
    if settings.in_memory:
        return "memory (gone when this command ends)"
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return str(Path(url.database).resolve())
    return redact(settings.database_url)


if __name__ == "__main__":
    sys.exit(main())
