"""The API and the worker as an operator runs them: real ``debtflow serve``, ``debtflow
worker`` and ``debtflow scheduler`` processes on PostgreSQL, sharing a Redis broker, with
Stripe played by the local emulator (so charges are counted per idempotency key, across
processes). Plus the embedded default: ``debtflow serve`` with no broker applies webhook
events itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from debtflow_adapters.persistence import SqlUnitOfWork, create_engine
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq import TaskiqJobQueue, make_broker
from debtflow_core.domain.payment import Payment
from tests.e2e.conftest import empty_queue_on
from tests.support.imports import placement_text
from tests.support.stripe_emulator import StripeEmulator
from tests.support.stripe_events import SECRET, event, signed

SRC = Path(__file__).parents[2] / "src"
BROKER_URL = os.environ.get("DEBTFLOW_TEST_BROKER_URL", "redis://127.0.0.1:6379/12")
JWT_SECRET = "e2e-worker-secret-" + "x" * 32
# Upper bounds, reached only on a machine busy with other work: a process starts in seconds.
START_SECONDS = 60
STOP_SECONDS = 15
ADMIN = ("admin@demo.example.com", "demo-admin-password")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    directory: Path
    name: str

    def output(self) -> str:
        return (self.directory / f"{self.name}.out").read_text() + (
            self.directory / f"{self.name}.err"
        ).read_text()

    def stop(self, signal_: signal.Signals = signal.SIGTERM) -> int:
        self.popen.send_signal(signal_)
        return self.popen.wait(timeout=STOP_SECONDS)


@dataclass
class Installation:
    """One database and its environment; starts debtflow commands on them."""

    directory: Path
    env: dict[str, str]
    started: list[Process] = field(default_factory=list)

    def run(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "debtflow_adapters.cli", *args],
            cwd=self.directory,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )

    def start(self, name: str, *args: str) -> Process:
        out = (self.directory / f"{name}.out").open("wb")
        err = (self.directory / f"{name}.err").open("wb")
        with out, err:
            popen = subprocess.Popen(
                [sys.executable, "-m", "debtflow_adapters.cli", *args],
                cwd=self.directory,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,  # a process group of its own: see kill_all
            )
        process = Process(popen, self.directory, name)
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        """Kill every process started, with its children: a taskiq worker's processes
        outlive a killed parent, and would go on taking later tests' jobs."""
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait()

    def serve(self) -> Server:
        port = _free_port()
        process = self.start(f"serve-{port}", "serve", "--port", str(port))
        server = Server(process, f"http://127.0.0.1:{port}")
        server.wait_until_healthy()
        return server


@dataclass
class Server:
    process: Process
    url: str
    token: str = ""

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                pytest.fail(f"the server exited: {self.process.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"no answer from {self.url}/health")
        email, password = ADMIN
        response = httpx.post(
            f"{self.url}/v1/auth/token", json={"email": email, "password": password}
        )
        self.token = response.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=90, **kwargs)

    def processor(self, kind: str) -> str:
        listed = self.call("GET", "/v1/payment-processors").json()
        found = [p["id"] for p in listed if p["kind"] == kind]
        if found:
            return found[0]
        added = self.call("POST", "/v1/payment-processors", json={"name": kind, "kind": kind})
        assert added.status_code == 201, added.text
        return str(added.json()["id"])

    def pay(self, key: str, processor: str, method: str) -> httpx.Response:
        accounts = self.call("GET", "/v1/accounts", params={"status": "active"}).json()
        account = max(accounts["items"], key=lambda a: a["current_balance"])
        return self.call(
            "POST",
            "/v1/payments",
            headers={"Idempotency-Key": key},
            json={
                "account_id": account["id"],
                "amount": 100,
                "currency": account["currency"],
                "processor_id": processor,
                "payment_method": method,
            },
        )

    def deliver(self, payload: dict[str, Any]) -> httpx.Response:
        body, headers = signed(payload, datetime.now(UTC))
        return httpx.post(f"{self.url}/v1/webhooks/stripe", content=body, headers=headers)

    def wait_for_status(self, payment_id: str, status: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.call("GET", f"/v1/payments/{payment_id}").json()["status"] == status:
                return
            time.sleep(0.2)
        pytest.fail(f"payment {payment_id} did not become {status}")


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def broker_redis() -> Iterator[str]:
    yield from empty_queue_on(BROKER_URL)


def _base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env["PYTHONPATH"] = str(SRC)
    env["DEBTFLOW_JWT_SECRET"] = JWT_SECRET
    env["DEBTFLOW_STRIPE_WEBHOOK_SECRET"] = SECRET
    env["DEBTFLOW_WORKER_METRICS_PORT"] = str(_free_port())
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@pytest.fixture
def installation(
    tmp_path: Path, database: str, broker_redis: str, stripe_emulator: StripeEmulator
) -> Iterator[Installation]:
    env = _base_env() | {
        "DEBTFLOW_DATABASE_URL": database,
        "DEBTFLOW_BROKER_URL": broker_redis,
        "DEBTFLOW_STRIPE_API_KEY": stripe_emulator.api_key,
        "DEBTFLOW_STRIPE_API_BASE": stripe_emulator.url,
        "DEBTFLOW_SETTLE_AFTER_SECONDS": "1",
    }
    yield from _installation(tmp_path, env)


def _installation(tmp_path: Path, env: dict[str, str]) -> Iterator[Installation]:
    installation = Installation(tmp_path, env)
    installation.run("seed-demo")
    try:
        yield installation
    finally:
        installation.kill_all()


def _worker_metrics(installation: Installation) -> dict[tuple[str, frozenset], float]:
    port = installation.env["DEBTFLOW_WORKER_METRICS_PORT"]
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert scraped.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }


async def _payment(database: str, payment_id: str) -> Payment:
    engine = create_engine(database)
    try:
        async with SqlUnitOfWork(engine) as uow:
            payment = await uow.payments.get(uuid.UUID(payment_id))
    finally:
        await engine.dispose()
    assert payment is not None
    return payment


async def test_webhooks_are_applied_by_a_worker_over_redis_which_stops_on_sigterm(
    installation: Installation,
):
    server = installation.serve()
    worker = installation.start("worker", "worker")
    stripe = server.processor("stripe")
    pending = server.pay("e2e-processing", stripe, "pm_card_processing")
    assert pending.status_code == 202, pending.text
    payment = pending.json()

    succeeded = event("payment_intent.succeeded", payment["id"], payment["gateway_reference"])
    first = server.deliver(succeeded)
    assert first.json() == {"received": True, "new": True}
    server.wait_for_status(payment["id"], "completed")
    replay = server.deliver(succeeded)
    failed_late = server.deliver(
        event("payment_intent.payment_failed", payment["id"], payment["gateway_reference"])
    )
    assert replay.json() == {"received": True, "new": False}
    assert failed_late.json() == {"received": True, "new": True}
    _wait(lambda: "ignored" in worker.output(), "the late failure to be applied")
    assert server.call("GET", f"/v1/payments/{payment['id']}").json()["status"] == "completed"

    started = time.monotonic()
    assert worker.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in worker.output()
    assert_json_lines(worker)


def test_an_upload_is_imported_by_a_worker_over_redis(installation: Installation):
    """The server backs the file up to local storage and queues it; the worker, another
    process, downloads it from there and imports it. The worker's metrics endpoint serves
    what its processes did, whichever of the two ran the task."""
    server = installation.serve()
    worker = installation.start("worker", "worker", "--workers", "2")
    text = placement_text(20, bad_every=10)

    response = server.call(
        "POST", "/v1/imports", files={"file": ("e2e.csv", text.encode(), "text/csv")}
    )

    assert response.status_code == 202, response.text
    run_id = response.json()["id"]

    def finished() -> bool:
        status = server.call("GET", f"/v1/imports/{run_id}").json()["status"]
        return status not in ("queued", "running")

    _wait(finished, "the worker to import the upload")
    run = server.call("GET", f"/v1/imports/{run_id}").json()
    assert (run["status"], run["rows_created"], run["rows_failed"]) == (
        "partially_failed",
        18,
        2,
    )
    assert f"import run {run_id}" in worker.output()
    metrics = _worker_metrics(installation)
    task = {"task": "debtflow.import_placement_file"}
    assert metrics[("debtflow_tasks_started_total", frozenset(task.items()))] == 1
    assert metrics[("debtflow_tasks_succeeded_total", frozenset(task.items()))] == 1
    assert metrics[("debtflow_import_rows_total", frozenset({("outcome", "created")}))] == 18
    assert metrics[("debtflow_import_rows_total", frozenset({("outcome", "failed")}))] == 2
    assert worker.stop(signal.SIGTERM) == 0


async def test_a_payment_left_pending_by_a_crash_is_settled_once_by_the_task(
    installation: Installation, database: str, stripe_emulator: StripeEmulator
):
    """The server is killed after Stripe charged and before it heard back (phase 3 never
    runs); the settle task asks Stripe again under the same key and gets the same charge."""
    server = installation.serve()
    stripe = server.processor("stripe")
    key = "e2e-crash"
    stripe_emulator.hang(60)  # charge at once, answer a minute late
    answers: list[httpx.Response | Exception] = []

    def pay() -> None:
        try:
            answers.append(server.pay(key, stripe, "pm_card_visa"))
        except httpx.HTTPError as error:
            answers.append(error)

    paying = threading.Thread(target=pay)
    paying.start()
    gateway_key = next(
        r.idempotency_key
        for r in _await_received(stripe_emulator)
        if r.idempotency_key and f":{key}:" in r.idempotency_key
    )
    _wait(lambda: stripe_emulator.performed(gateway_key) == 1, "Stripe to charge")
    server.process.stop(signal.SIGKILL)
    paying.join(timeout=10)
    assert isinstance(answers[0], httpx.HTTPError)  # the client never got an answer
    payment_id = stripe_emulator.received[0].params["metadata"]["debtflow_payment_id"]
    assert (await _payment(database, payment_id)).status == "pending"

    worker = installation.start("worker", "worker")
    time.sleep(1.5)  # older than DEBTFLOW_SETTLE_AFTER_SECONDS
    broker = make_broker(Settings(broker_url=installation.env["DEBTFLOW_BROKER_URL"]))
    await broker.startup()
    try:
        await TaskiqJobQueue(broker).enqueue("debtflow.settle_pending_payments")
    finally:
        await broker.shutdown()

    # The worker may still be starting: on a busy machine that takes longer than the task.
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if (await _payment(database, payment_id)).status == "completed":
            break
        time.sleep(0.1)
    settled = await _payment(database, payment_id)
    assert settled.status == "completed"
    assert stripe_emulator.performed(gateway_key) == 1  # charged once, answered twice
    assert [r.idempotency_key for r in stripe_emulator.received].count(gateway_key) == 2
    assert "settled 1 pending payments" in worker.output()
    assert worker.stop() == 0


def _await_received(emulator: StripeEmulator) -> list[Any]:
    _wait(lambda: bool(emulator.received), "the charge to reach Stripe")
    return emulator.received


async def test_the_scheduler_starts_and_stops_on_sigterm(installation: Installation):
    scheduler = installation.start("scheduler", "scheduler")
    _wait(lambda: "Startup completed" in scheduler.output(), "the scheduler to start")
    assert scheduler.popen.poll() is None, scheduler.output()
    assert scheduler.stop() == 0
    assert "Scheduler shut down" in scheduler.output()
    assert "doesn't match scheduler's broker" not in scheduler.output()  # tasks not skipped
    assert "Traceback" not in scheduler.output()
    assert_json_lines(scheduler)


def assert_json_lines(process: Process) -> None:
    """Every line the process wrote is one JSON log record, as the API's are."""
    lines = process.output().splitlines()
    assert lines
    for line in lines:
        assert line.startswith("{"), line
        assert {"time", "level", "logger", "message"} <= json.loads(line).keys(), line


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Installation]:
    """The embedded default: a SQLite file, no broker, no Stripe key."""
    installation = Installation(tmp_path, _base_env())
    installation.run("migrate")
    yield from _installation(tmp_path, installation.env)


def test_without_a_broker_serve_applies_webhook_events_itself(embedded: Installation):
    server = embedded.serve()
    pending = server.pay("embedded", server.processor("sandbox"), "pm_card_processing")
    assert pending.status_code == 202, pending.text
    payment = pending.json()
    delivered = server.deliver(
        event("payment_intent.succeeded", payment["id"], payment["gateway_reference"])
    )
    assert delivered.status_code == 200, delivered.text
    server.wait_for_status(payment["id"], "completed")
    # A lone uvicorn process re-raises SIGTERM once it has shut down gracefully.
    assert server.process.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.process.output()
    assert "Traceback" not in server.process.output()


def test_worker_and_scheduler_need_a_broker(embedded: Installation):
    for command in ("worker", "scheduler"):
        result = subprocess.run(
            [sys.executable, "-m", "debtflow_adapters.cli", command],
            cwd=embedded.directory,
            env=embedded.env,
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
        )
        assert result.returncode == 2
        assert result.stderr.startswith("debtflow: error: DEBTFLOW_BROKER_URL is not set")
        assert len(result.stderr.splitlines()) == 1
    unreachable = subprocess.run(
        [sys.executable, "-m", "debtflow_adapters.cli", "worker"],
        cwd=embedded.directory,
        env=embedded.env | {"DEBTFLOW_BROKER_URL": "redis://:secret@127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        "debtflow: error: the broker redis://:***@127.0.0.1:1/0 does not answer: "
    )
    assert len(unreachable.stderr.splitlines()) == 1
