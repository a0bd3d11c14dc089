"""``debtflow demo`` and ``debtflow serve`` as an operator runs them: real processes under
uvicorn, each in an empty directory with no ``DEBTFLOW_*`` variable but a port, reached over
HTTP, then stopped by a signal.

Both servers start at once to keep this quick: the demo migrates and seeds its own SQLite
file, while the two-worker server gets one prepared with ``migrate`` and ``seed-demo``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

SRC = Path(__file__).parents[2] / "src"
# Upper bounds, reached only on a machine busy with other work: a process starts in seconds.
START_SECONDS = 60
STOP_SECONDS = 10
REQUESTS = 20


class Server(NamedTuple):
    process: subprocess.Popen[bytes]
    url: str
    directory: Path

    def output(self) -> tuple[str, str]:
        """What the process wrote to standard output and standard error so far."""
        return (self.directory / "stdout").read_text(), (self.directory / "stderr").read_text()


class Servers(NamedTuple):
    demo: Server
    two_workers: Server


def _debtflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "debtflow_adapters.cli", *args]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(directory: Path, env: dict[str, str], *args: str) -> Server:
    port = _free_port()
    with (directory / "stdout").open("wb") as out, (directory / "stderr").open("wb") as err:
        process = subprocess.Popen(
            _debtflow(*args, "--port", str(port)),
            cwd=directory,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # a process group of its own, killed whole at the end
        )
    return Server(process, f"http://127.0.0.1:{port}", directory)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DEBTFLOW_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["PYTHONPATH"] = str(SRC)
    started: list[Server] = []
    try:
        started.append(_start(tmp_path_factory.mktemp("demo"), env, "demo"))
        prepared = tmp_path_factory.mktemp("two-workers")
        for command in ("migrate", "seed-demo"):
            subprocess.run(
                _debtflow(command),
                cwd=prepared,
                env=env,
                check=True,
                capture_output=True,
                timeout=START_SECONDS,
            )
        # Its own temporary directory, to see that the metrics directory is cleaned up.
        (prepared / "tmp").mkdir()
        started.append(
            _start(prepared, {**env, "TMPDIR": str(prepared / "tmp")}, "serve", "--workers", "2")
        )
        yield Servers(*started)
    finally:
        for server in started:
            with contextlib.suppress(ProcessLookupError):  # the server's workers too
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}: {server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).json() == {"status": "ok"}:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    pytest.fail(f"no answer from {server.url}/health within {START_SECONDS} s")


def _wait_until_started(server: Server, *, workers: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.output()[1].count("Application startup complete") >= workers:
            return
        time.sleep(0.1)
    pytest.fail(f"{workers} workers did not start within {START_SECONDS} s: {server.output()}")


def _sign_in(server: Server, email: str, password: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/auth/token", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    access_token: str = response.json()["access_token"]
    return access_token


def _requests_to_me(server: Server) -> float:
    """GET /v1/me answered 200, as counted by the worker that answers this scrape."""
    scraped = httpx.get(f"{server.url}/metrics")
    assert scraped.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "debtflow_http_requests_total"
        and sample.labels == {"method": "GET", "route": "/v1/me", "status": "200"}
    )


def _stop(server: Server, signal_: signal.Signals) -> int:
    server.process.send_signal(signal_)
    return server.process.wait(timeout=STOP_SECONDS)


def test_demo_seeds_prints_the_logins_and_serves_them(servers: Servers) -> None:
    demo = servers.demo
    _wait_until_healthy(demo)

    token = _sign_in(demo, "carla@demo.example.com", "demo-collector-password")
    me = httpx.get(f"{demo.url}/v1/me", headers={"Authorization": f"Bearer {token}"})
    docs = httpx.get(f"{demo.url}/schema/swagger")
    status = _stop(demo, signal.SIGINT)  # Ctrl-C, as the demo says
    out, err = demo.output()

    assert (me.status_code, me.json()["email"], me.json()["role"]) == (
        200,
        "carla@demo.example.com",
        "collector",
    )
    assert docs.status_code == 200
    assert status == 0
    assert out.startswith("Seeded the demo agency 'Demo Collections' (slug 'demo')\n")
    assert f"  database    {demo.directory / 'debtflow.db'}\n" in out
    assert "  carla@demo.example.com     demo-collector-password  collector\n" in out
    assert f"Sign in with POST {demo.url}/v1/auth/token, for instance:\n" in out
    assert out.endswith(f"Serving the API on {demo.url} (docs at {demo.url}/schema/swagger)\n")
    assert err.startswith("debtflow: warning: DEBTFLOW_JWT_SECRET is not set, ")
    assert "the schedule runs in this process" in err  # one process, no broker
    assert "Traceback" not in err


def test_two_workers_share_the_generated_token_key_and_add_up_their_metrics(
    servers: Servers,
) -> None:
    """Every request comes on a connection of its own, which the kernel hands to whichever
    worker accepts it first: ten were seen to split anywhere from 9-1 to 5-5, so twenty
    reach both all but surely. A token signed by one worker must pass in both; had each
    made its own key, the other's share of the requests would fail. Whichever worker
    answers a scrape counts every request, its own and the other's."""
    server = servers.two_workers
    _wait_until_healthy(server)
    _wait_until_started(server, workers=2)  # one may answer while the other still starts

    token = _sign_in(server, "riley@demo.example.com", "demo-readonly-password")
    answers = [
        httpx.get(f"{server.url}/v1/me", headers={"Authorization": f"Bearer {token}"})
        for _ in range(REQUESTS)
    ]
    scrapes = [_requests_to_me(server) for _ in range(4)]
    metrics_dir = list((server.directory / "tmp").iterdir())
    status = _stop(server, signal.SIGTERM)  # as a service manager stops it
    _, err = server.output()
    workers = [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", err)]

    assert [(a.status_code, a.json()["email"]) for a in answers] == [
        (200, "riley@demo.example.com")
    ] * REQUESTS
    assert status == 0
    assert len(set(workers)) == 2
    assert "the schedule runs in this process" not in err  # two would send every job twice
    assert scrapes == [REQUESTS] * 4
    assert [d.name.startswith("debtflow-metrics-") for d in metrics_dir] == [True]
    assert list((server.directory / "tmp").iterdir()) == []  # removed when the server stops
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone with the server, not left behind
    assert "Traceback" not in err


def test_the_command_lines_flags_win_over_the_environment_in_every_worker(
    tmp_path: Path,
) -> None:
    """The app each worker builds reads its settings from the environment: the flags must
    be there too, or a worker would see 4 workers (and refuse the schedule it is given)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env |= {"PYTHONPATH": str(SRC), "DEBTFLOW_HTTP_WORKERS": "4"}
    subprocess.run(_debtflow("migrate"), cwd=tmp_path, env=env, check=True, capture_output=True)
    server = _start(tmp_path, env, "serve", "--workers", "1")
    try:
        _wait_until_healthy(server)
        _wait_until_started(server, workers=1)
        assert "the schedule runs in this process" in server.output()[1]
    finally:
        _stop(server, signal.SIGTERM)
