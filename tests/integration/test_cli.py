"""The ``debtflow`` command line against real databases: SQLite files and PostgreSQL.

Commands run in-process through ``main(argv)`` (in a thread of their own, since each runs
its own event loop), with the environment, standard input and output swapped for the
call; one test runs the module as a real process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import httpx
import pytest
from taskiq.cli.scheduler.args import SchedulerArgs

from debtflow_adapters.cli import SERVER_HEALTHCHECK_SECONDS, main
from debtflow_adapters.composition import make_container
from debtflow_adapters.settings import Settings
from debtflow_core.domain.user import Role
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_core.ports.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from tests.conftest import PostgresServer

PASSWORD = "correct horse battery"
UNREACHABLE = "postgresql+psycopg://postgres:pg-s3cret@127.0.0.1:1/debtflow"
SRC = Path(__file__).parents[2] / "src"


class Outcome(NamedTuple):
    status: int
    out: str
    err: str


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Cli:
    """Runs ``debtflow`` command lines (split as a shell would) with ``DEBTFLOW_DATABASE_URL``
    set to one database, or with no ``DEBTFLOW_*`` variable at all for ``None``.

    ``passwords`` answer the terminal prompts, in order, when ``stdin`` is a terminal.
    """

    def __init__(self, database_url: str | None) -> None:
        self._database_url = database_url

    def __call__(
        self,
        command_line: str,
        *,
        stdin: io.StringIO | None = None,
        env: dict[str, str] | None = None,
        passwords: tuple[str, ...] = (),
    ) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            for name in list(os.environ):
                if name.startswith("DEBTFLOW_"):
                    patch.delenv(name)
            if self._database_url is not None:
                patch.setenv("DEBTFLOW_DATABASE_URL", self._database_url)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", stdin or io.StringIO(""))
            prompts = iter(passwords)
            patch.setattr("getpass.getpass", lambda prompt: next(prompts))
            with redirect_stdout(out), redirect_stderr(err), ThreadPoolExecutor(1) as thread:
                status = thread.submit(_main, shlex.split(command_line)).result()
        return Outcome(status, out.getvalue(), err.getvalue())


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's way out, for --help and usage errors
        return int(exit_.code or 0)


def assert_error(outcome: Outcome, status: int, message: str) -> None:
    """A failure is exactly one line on standard error, and nothing on standard output."""
    assert outcome == Outcome(status, "", f"debtflow: error: {message}\n")


class Acme(NamedTuple):
    cli: Cli
    migrate: Outcome
    create_agency: Outcome
    create_user: Outcome


@pytest.fixture(scope="module")
async def postgres_database(postgres_server: PostgresServer) -> str:
    """An empty PostgreSQL database for this module."""
    return await postgres_server.create_database()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('cli') / 'debtflow.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture(scope="module")
def acme(database_url: str) -> Acme:
    """The database migrated, with the agency ``acme`` and its collector Ada, all made with
    the command line."""
    cli = Cli(database_url)
    return Acme(
        cli=cli,
        migrate=cli("migrate"),
        create_agency=cli("create-agency --slug acme --name 'Acme Recovery'"),
        create_user=cli(
            "create-user --agency acme --email Ada@Acme.example --role collector"
            " --name 'Ada Lovelace'",
            stdin=io.StringIO(f"{PASSWORD}\n"),
        ),
    )


def test_migrate_create_agency_and_create_user_succeed(acme: Acme) -> None:
    assert acme.migrate.status == 0
    assert acme.migrate.out.startswith("migrated ")
    assert acme.migrate.out.endswith(" to the latest schema\n")
    assert acme.create_agency.status == 0
    assert acme.create_agency.out.startswith("created agency 'acme' (Acme Recovery), id ")
    assert acme.create_user.status == 0
    assert acme.create_user.out.startswith(
        "created collector 'ada@acme.example' in agency 'acme', id "
    )
    assert acme.migrate.err == acme.create_agency.err == acme.create_user.err == ""


def test_migrate_again_changes_nothing(acme: Acme) -> None:
    assert acme.cli("migrate") == acme.migrate


async def test_the_password_comes_from_stdin_and_is_stored_hashed(
    acme: Acme, database_url: str
) -> None:
    container = make_container(Settings.from_env({"DEBTFLOW_DATABASE_URL": database_url}))
    try:
        async with container() as request:
            uow = await request.get(UnitOfWork)
            async with uow:
                user = await uow.users.get_by_email("ada@acme.example")
        hasher = await container.get(PasswordHasher)
    finally:
        await container.close()

    assert user is not None
    assert (user.full_name, user.role) == ("Ada Lovelace", Role.COLLECTOR)
    assert PASSWORD not in user.password_hash
    assert hasher.verify(user.password_hash, PASSWORD)


NEW_USER = "create-user --agency acme --email new@acme.example"


@pytest.mark.parametrize(
    ("command_line", "stdin", "status", "message"),
    [
        pytest.param(
            "create-agency --slug acme --name Another",
            "",
            1,
            "the slug 'acme' is taken",
            id="duplicate-slug",
        ),
        pytest.param(
            "create-agency --slug 'Not A Slug' --name Another",
            "",
            2,
            "slug: a slug is 1-63 lower-case letters, digits or inner dashes",
            id="bad-slug",
        ),
        pytest.param(
            "create-user --agency nowhere --email new@acme.example --role readonly",
            f"{PASSWORD}\n",
            1,
            "no agency has the slug 'nowhere'",
            id="unknown-agency",
        ),
        pytest.param(
            "create-user --agency acme --email ADA@acme.example --role readonly",
            f"{PASSWORD}\n",
            1,
            "this email cannot be used for a new user",
            id="duplicate-email",
        ),
        pytest.param(
            f"{NEW_USER} --role boss",
            f"{PASSWORD}\n",
            2,
            "role: 'boss' is not a role; use one of agency_admin, collector, readonly",
            id="bad-role",
        ),
        pytest.param(
            f"{NEW_USER} --role readonly",
            "short\n",
            2,
            "password: a password has at least 10 characters",
            id="short-password",
        ),
        pytest.param(
            f"{NEW_USER} --role readonly",
            "",
            2,
            "no password: give it as one line on standard input",
            id="no-password",
        ),
    ],
)
def test_errors_are_one_line(
    acme: Acme, command_line: str, stdin: str, status: int, message: str
) -> None:
    assert_error(acme.cli(command_line, stdin=io.StringIO(stdin)), status, message)


def test_on_a_terminal_the_password_is_asked_twice(acme: Acme) -> None:
    command_line = "create-user --agency acme --email tty@acme.example --role readonly"

    differing = acme.cli(command_line, stdin=_TTY(), passwords=(PASSWORD, PASSWORD + "!"))
    matching = acme.cli(command_line, stdin=_TTY(), passwords=(PASSWORD, PASSWORD))

    assert_error(differing, 2, "the two passwords differ")
    assert matching.status == 0
    assert matching.out.startswith("created readonly 'tty@acme.example' in agency 'acme'")


@pytest.mark.parametrize("command_line", ["migrate", "create-agency --slug a --name A"])
def test_an_unreachable_database_is_one_line_without_its_password(command_line: str) -> None:
    outcome = Cli(UNREACHABLE)(command_line)

    assert (outcome.status, outcome.out) == (1, "")
    assert outcome.err.startswith(
        "debtflow: error: database postgresql+psycopg://postgres:***@127.0.0.1:1/debtflow: "
    )
    assert "Connection refused" in outcome.err
    assert outcome.err.count("\n") == 1
    assert "pg-s3cret" not in outcome.err


def test_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"

    outcome = Cli(f"sqlite:///{path}")("create-agency --slug a --name A")

    assert_error(outcome, 1, f"database {path}: no such table: agencies")


def test_a_schema_this_release_does_not_know_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    with sqlite3.connect(path) as database:
        database.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        database.execute("INSERT INTO alembic_version VALUES ('9999_from_a_later_release')")

    outcome = Cli(f"sqlite:///{path}")("migrate")

    assert_error(
        outcome,
        1,
        f"migrating {path} failed: Can't locate revision identified by '9999_from_a_later_release'",
    )


def test_malformed_settings_are_all_named_in_one_line() -> None:
    outcome = Cli("foo://app:pg-s3cret@db/x")("migrate", env={"DEBTFLOW_REDIS_URL": "http://c"})

    assert_error(
        outcome,
        2,
        "DEBTFLOW_DATABASE_URL: 'foo://app:***@db/x' is not a database URL: unsupported "
        "database 'foo'; expected sqlite:///PATH or postgresql://USER@HOST/DATABASE, or "
        "memory://; DEBTFLOW_REDIS_URL: 'http://c' is not a Redis URL: use "
        "redis://HOST[:PORT][/DB] or rediss://… (DB a number)",
    )


def test_the_in_memory_store_needs_no_migration() -> None:
    outcome = Cli("memory://")("migrate")

    assert outcome == Outcome(0, "the in-memory store has no schema to migrate\n", "")


def test_usage_errors_exit_with_2() -> None:
    outcome = Cli(None)("create-agency --slug a")

    assert outcome.status == 2
    assert outcome.err.endswith("error: the following arguments are required: --name\n")


@pytest.fixture(params=["defaults", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_cli(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The command line with no settings at all (a SQLite file in an empty working
    directory), or on this module's PostgreSQL database."""
    if request.param == "defaults":
        monkeypatch.chdir(tmp_path)
        return Cli(None)
    return Cli(request.getfixturevalue("postgres_database"))


def test_seed_demo_seeds_once_and_then_changes_nothing(demo_cli: Cli) -> None:
    assert demo_cli("migrate").status == 0

    first, second = demo_cli("seed-demo"), demo_cli("seed-demo")

    assert (first.status, first.err) == (0, "")
    assert re.fullmatch(
        r"seeded the demo agency 'demo': 4 users, 50 debtors, 60 accounts, \d+ activities\n",
        first.out,
    )
    assert second == Outcome(0, "the demo agency 'demo' already exists; nothing was changed\n", "")


@pytest.mark.parametrize("command_line", ["serve", "demo --port 8001"])
def test_the_in_memory_store_cannot_be_served(command_line: str) -> None:
    outcome = Cli("memory://")(command_line)

    assert_error(
        outcome,
        2,
        "the in-memory store cannot be served: each server process would start with an "
        "empty one of its own; unset DEBTFLOW_DATABASE_URL to use a SQLite file",
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--port 0", "argument --port: '0' is not a whole number from 1 to 65535"),
        ("--workers many", "argument --workers: 'many' is not a whole number from 1 to 64"),
        (
            "--forwarded-allow-ips lb.internal",
            "argument --forwarded-allow-ips: 'lb.internal' is not an IP address or network "
            "like 10.0.0.0/8",
        ),
    ],
)
def test_bad_server_options_are_usage_errors(option: str, message: str) -> None:
    outcome = Cli(None)(f"serve {option}")

    assert (outcome.status, outcome.out) == (2, "")
    assert outcome.err.endswith(f"error: {message}\n")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, object]]]:
    """What ``uvicorn.run`` is given, instead of serving. The variables the server commands
    export for their workers are set here first, so that the test puts them back, and so is
    the logging they configure."""
    runs: list[dict[str, object]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: runs.append(options))
    for name in ("HTTP_HOST", "HTTP_PORT", "HTTP_WORKERS", "JWT_SECRET", "IN_PROCESS_SCHEDULER"):
        monkeypatch.setenv(f"DEBTFLOW_{name}", "")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield runs
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("command_line", "env", "trusted"),
    [
        ("serve", {}, ["127.0.0.1", "::1"]),
        ("serve", {"DEBTFLOW_FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, ["10.0.0.0/8"]),
        (
            "serve --forwarded-allow-ips 192.168.1.7,fd00::/8",
            {"DEBTFLOW_FORWARDED_ALLOW_IPS": "10.0.0.0/8"},
            ["192.168.1.7", "fd00::/8"],
        ),
        ("demo --forwarded-allow-ips ''", {}, []),
    ],
)
def test_the_server_believes_forwarded_headers_only_from_the_proxies_configured(
    served: list[dict[str, object]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command_line: str,
    env: dict[str, str],
    trusted: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    outcome = Cli(f"sqlite:///{tmp_path / 'debtflow.db'}")(command_line, env=env)

    assert outcome.status == 0, outcome.err
    [options] = served
    assert (options["proxy_headers"], options["forwarded_allow_ips"]) == (True, trusted)


REDIS_WARNING = (
    "debtflow: warning: DEBTFLOW_REDIS_URL is not set, so each of the {0} server processes "
    "throttles sign-ins on its own, counting only the attempts it answers, and a client gets "
    "up to {0} times as many before it is refused; set it to a Redis server they all share "
    "(redis://HOST:PORT/DB), or serve with one worker\n"
)


@pytest.mark.parametrize(
    ("command_line", "env", "workers", "warned"),
    [
        ("serve --workers 2", {}, 2, True),
        ("serve", {"DEBTFLOW_HTTP_WORKERS": "3"}, 3, True),
        ("demo --workers 4", {}, 4, True),
        ("serve --workers 2", {"DEBTFLOW_REDIS_URL": "redis://127.0.0.1:6379/0"}, 2, False),
        ("serve", {}, 1, False),
        ("serve --workers 1", {"DEBTFLOW_HTTP_WORKERS": "2"}, 1, False),
    ],
)
def test_several_server_workers_without_redis_are_warned_of_their_separate_throttles(
    served: list[dict[str, object]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command_line: str,
    env: dict[str, str],
    workers: int,
    warned: bool,
) -> None:
    """Without Redis each server process keeps its own sign-in counters (the in-process
    rate limiter), so N processes let a client try N times the limit."""
    monkeypatch.chdir(tmp_path)
    outcome = Cli(f"sqlite:///{tmp_path / 'debtflow.db'}")(
        command_line, env={"DEBTFLOW_JWT_SECRET": "s" * 32, **env}
    )

    assert (outcome.status, outcome.err) == (0, REDIS_WARNING.format(workers) if warned else "")
    [options] = served
    assert options["workers"] == workers
    # uvicorn's 5 s killed every new worker that a busy machine was still starting.
    assert options["timeout_worker_healthcheck"] == SERVER_HEALTHCHECK_SECONDS


def test_several_server_workers_log_the_supervisors_errors_as_json(tmp_path: Path) -> None:
    """With several workers, uvicorn's supervising process builds no app, which would
    configure the logging: its lines (a worker died, restarted; the port is taken) were
    plain text, or lost below WARNING."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env |= {"PYTHONPATH": str(SRC), "DEBTFLOW_JWT_SECRET": "s" * 32}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "debtflow_adapters.cli",
                *f"serve --workers 2 --port {port}".split(),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert process.returncode != 0
    warning, error = process.stderr.splitlines()
    assert warning.startswith("debtflow: warning: DEBTFLOW_REDIS_URL is not set")
    line = json.loads(error)
    assert (line["level"], line["logger"]) == ("error", "uvicorn.error")
    assert "Address already in use" in line["message"]


def test_the_module_runs_as_a_program_without_tracebacks(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env |= {"PYTHONPATH": str(SRC), "DEBTFLOW_DATABASE_URL": UNREACHABLE}

    process = subprocess.run(
        [sys.executable, "-m", "debtflow_adapters.cli", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert process.returncode == 1
    assert process.stdout == ""
    assert process.stderr.count("\n") == 1
    assert process.stderr.startswith("debtflow: error: database postgresql+psycopg://postgres:***@")


def test_a_server_stopped_by_sigterm_shuts_down_and_exits_0(tmp_path: Path) -> None:
    """uvicorn raises the signal that stopped it again once it has shut down: SIGTERM's
    default action then killed a one-process server (status 143, as if it had not stopped
    cleanly), and skipped what the command does after serving."""
    database = f"sqlite:///{tmp_path / 'debtflow.db'}"
    assert Cli(database)("migrate").status == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env |= {"PYTHONPATH": str(SRC), "DEBTFLOW_DATABASE_URL": database}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (tmp_path / "stderr").open("w+") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "debtflow_adapters.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            _wait_until_served(server, f"http://127.0.0.1:{port}/health")
            server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=30)
        finally:
            server.kill()
            server.wait()
        err.seek(0)
        logged = err.read()

    assert status == 0
    assert "Application shutdown complete." in logged
    assert "Traceback" not in logged


def _wait_until_served(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)  # not listening yet
    pytest.fail(f"no answer from {url} within 60 s")


def test_a_server_process_imports_only_what_serving_needs() -> None:
    """Each process ``serve --workers N`` spawns imports the command's main module,
    ``debtflow_adapters.cli``, again before it answers uvicorn's health check, then the app:
    Alembic, the container, Redis and taskiq came with the first, Alembic with the app,
    seconds that a busy machine made longer than the health check waited."""
    probe = (
        "import sys; import debtflow_adapters.cli; print(*sorted(sys.modules)); "
        "import debtflow_http.app; print(*sorted(sys.modules))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}

    process = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    cli, app = (
        {name.partition(".")[0] for name in line.split()} for line in process.stdout.splitlines()
    )
    assert cli & {"alembic", "dishka", "redis", "taskiq"} == set()
    assert "alembic" not in app


def test_the_in_process_scheduler_is_refused_with_several_server_workers(tmp_path: Path) -> None:
    outcome = Cli(f"sqlite:///{tmp_path / 'debtflow.db'}")(
        "serve --workers 2", env={"DEBTFLOW_IN_PROCESS_SCHEDULER": "true"}
    )

    assert_error(
        outcome,
        2,
        "DEBTFLOW_IN_PROCESS_SCHEDULER: not with 2 server workers, each of which would send "
        "every scheduled job; serve with one worker",
    )


def test_the_workers_flag_decides_whether_the_in_process_scheduler_may_run(
    served: list[dict[str, object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flags win over the variables: the count of server workers is judged once
    --workers has been applied."""
    monkeypatch.chdir(tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'debtflow.db'}")
    env = {
        "DEBTFLOW_HTTP_WORKERS": "2",
        "DEBTFLOW_IN_PROCESS_SCHEDULER": "true",
        "DEBTFLOW_JWT_SECRET": "s" * 32,
    }

    assert_error(
        cli("serve", env=env),
        2,
        "DEBTFLOW_IN_PROCESS_SCHEDULER: not with 2 server workers, each of which would send "
        "every scheduled job; serve with one worker",
    )
    served_with_one = cli("serve --workers 1", env=env)
    assert (served_with_one.status, served_with_one.err) == (0, "")
    [options] = served
    assert options["workers"] == 1


def test_taskiq_logs_at_debtflows_log_level(sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    """taskiq's command lines set its logger to their own --log-level, INFO unless told:
    DEBTFLOW_LOG_LEVEL must reach them, or a worker logs a line for every job whatever it
    was set to."""
    levels: list[str] = []

    async def scheduler(args: SchedulerArgs) -> None:
        levels.append(args.log_level.name)

    def worker(*arguments: str) -> None:
        levels.append(arguments[arguments.index("--log-level") + 1])

    monkeypatch.setattr("taskiq.cli.scheduler.run.run_scheduler", scheduler)
    monkeypatch.setattr("debtflow_adapters.cli._run_taskiq", worker)
    monkeypatch.setenv("DEBTFLOW_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DEBTFLOW_BROKER_URL", "redis://127.0.0.1:6379/9")
    monkeypatch.setenv("DEBTFLOW_LOG_LEVEL", "warning")
    # In this thread, not Cli's: the scheduler handles SIGTERM, which only the main one may.
    assert [_main(["scheduler"]), _main(["worker"])] == [0, 0]
    assert levels == ["WARNING", "WARNING"]
