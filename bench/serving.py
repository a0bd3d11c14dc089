"""What the HTTP benchmarks share: serving the API in a child process, signing in, the CPU
its processes use, how busy the machine was, and writing a section of the results document.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg
import seeding

BENCH = Path(__file__).resolve().parent
DOCUMENT = BENCH.parent / "docs" / "benchmarks.md"
SOURCES = BENCH.parent / "src"
"""This checkout's code: servers run it even when the virtualenv was installed from another."""


@dataclass(frozen=True)
class Server:
    """A server process to benchmark: how to start it, and where it is ready."""

    command: list[str]
    env: dict[str, str]
    port: int
    ready_path: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def shown(self, **replaced: str) -> str:
        """The command as typed from the repository root (the venv's ``bin/`` in PATH), with
        some variables' values ``replaced``."""
        env = " ".join(f"{name}={replaced.get(name, value)}" for name, value in self.env.items())
        args = [Path(self.command[0]).name, *self.command[1:]]
        return f"{env} {shlex.join(args).replace(str(BENCH.parent) + '/', '')}"


def debtflow() -> str:
    """The ``debtflow`` command of the interpreter running the benchmark."""
    return str(Path(sys.executable).with_name("debtflow"))


@contextmanager
def running(server: Server, log: Path) -> Iterator[int]:
    """Run ``server`` for the duration of the block, its output in ``log``; give its pid."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            server.command,
            env={**os.environ, **server.env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_ready(process, server.base_url + server.ready_path, log)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within a minute:\n{log.read_text()}")


def sign_in(api: str, login: seeding.Login) -> str:
    """An access token for ``login``."""
    return call(api, "POST", "/v1/auth/token", {"email": login.email, "password": login.password})[
        "access_token"
    ]


def call(
    api: str, method: str, path: str, body: object | None = None, token: str | None = None
) -> dict:
    """One JSON request to the API; its decoded answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{api}{path}",
        data=None if body is None else msgspec.json.encode(body),
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(request) as response:
        return msgspec.json.decode(response.read())


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) used so far by process ``pid`` and its children: the
    server's worker processes."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: split after it.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine(admin_url: str) -> str:
    """Cores, memory, PostgreSQL and Python versions, and how busy other work kept the
    cores just before the runs (the machine may be shared)."""
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    with psycopg.connect(admin_url) as connection:
        (postgres,) = connection.execute("SHOW server_version").fetchone()
    return (
        f"{os.cpu_count()} cores, {memory_kib / 2**20:.0f} GiB, PostgreSQL {postgres.split()[0]},"
        f" Python {platform.python_version()}; the cores were {busy_share():.0%} busy"
        " before the runs"
    )


def busy_share(seconds: float = 2.0) -> float:
    """The share of CPU time spent not idle over ``seconds``, from ``/proc/stat``."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle and iowait
        return sum(fields) - idle, sum(fields)

    busy_before, total_before = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    return (busy_after - busy_before) / max(total_after - total_before, 1)


def write_section(title: str, section: str, document: Path = DOCUMENT) -> None:
    """Replace the section headed ``title`` in ``document`` (up to the next section of the
    same level), or add it at the end; other sections are left as they are."""
    text = document.read_text() if document.exists() else "# Benchmarks\n"
    start = text.find(f"\n{title}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        rest = "" if end == -1 else text[end:]
        text = text[: start + 1] + section + rest
    document.write_text(text)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
