"""Every route, for every role and ownership, from the app's own route table.

Ownership is what the request points at: an account assigned to the calling collector
(``own``), one assigned to a colleague (``colleague``), or one in another agency
(``foreign``); a payment on such an account; for user routes, a user of the caller's
agency or of another one. Expected:
another agency's objects are 404 for everyone; a collector's colleague's accounts (and
their debtors) are 404 to that collector; a role that may not act is 403; otherwise the
route's success status.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_core.domain.export import Export, ExportKind, ExportParameters, ExportStatus
from debtflow_core.domain.imports import FileSourceKind
from debtflow_core.domain.user import Role
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.exports import file_name, storage_key
from debtflow_core.use_cases.file_sources import CreateFileSource, NewFileSource
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.payments import MakePayment, NewPayment
from debtflow_core.use_cases.users import CreateUser, NewUser
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, KeptJobs, Tenant, TestAdapters, make_settings
from tests.support.imports import new_run, placement_text

ROLES = ("admin", "collector", "readonly")
TARGETS = ("own", "colleague", "foreign")
ALL = frozenset(ROLES)
ADMIN = frozenset({"admin"})
WRITERS = frozenset({"admin", "collector"})
REPORT_READERS = frozenset({"admin", "readonly"})
PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}

# Routes anyone may call, and the documentation: not part of the matrix. The webhook
# authenticates the gateway by its signature, never a user (tests/integration/api/
# test_webhooks_api.py); a file download link is its own credential (test_imports_api.py).
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/v1/auth/token"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/webhooks/stripe"),
    ("GET", "/v1/files/{key:path}"),
}


@pytest.fixture
async def api(database_url: str, sources_root: Path) -> AsyncIterator[Api]:
    """The app with its jobs kept rather than run: only the answers matter here. The test
    client runs the app on a thread of its own, so a job running there would resolve its
    dependencies while a scene seeds through the same container from the test's thread,
    and the container's asyncio lock is not made for two threads (the test could hang)."""
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    settings = make_settings(database_url, sources_root=str(sources_root))
    app = create_app(settings, TestAdapters(clock), KeptJobs(InMemoryJobQueue()))
    async with AsyncTestClient(app) as client:
        yield Api(app, client, clock)


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    success: int
    # "account", "debtor", "payment", "user", "file_source", "import" or "export"; None: a
    # collection
    target: str | None = None
    body: Callable[[Scene], dict[str, Any]] | None = field(default=None, compare=False)
    files: Callable[[Scene], dict[str, Any]] | None = field(default=None, compare=False)
    query: dict[str, str] | None = field(default=None, compare=False)


@dataclass
class Scene:
    """Fresh objects for one cell of the matrix, so that no cell depends on another."""

    api: Api
    alpha: Tenant
    beta: Tenant
    counter: itertools.count
    processors: dict[str, Any]
    target: str = "own"
    accounts: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    payments: dict[str, Any] = field(default_factory=dict)
    file_sources: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    async def prepare(self, target: str | None) -> None:
        if target == "user":
            for name, tenant in [("own", self.alpha), ("foreign", self.beta)]:
                command = NewUser(
                    email=f"{self.unique('target')}@example.com",
                    full_name="Target",
                    role=Role.COLLECTOR,
                    password="a long enough password",
                )
                self.users[name] = (await self.api.run(CreateUser, tenant.admin, command)).id
            return
        if target == "file_source":
            for name, tenant in [("own", self.alpha), ("foreign", self.beta)]:
                command = NewFileSource(
                    name=self.unique("source"),
                    kind=FileSourceKind.LOCAL,
                    directory=f"{tenant.slug}/drop",
                )
                source = await self.api.run(CreateFileSource, tenant.admin, command)
                self.file_sources[name] = source.id
        if target == "export":
            for name, tenant in [("own", self.alpha), ("foreign", self.beta)]:
                # Stored directly: a job queued from outside the app's loop would outlive it.
                export = _queued_export(tenant.admin.agency_id, self.api.clock.now())
                async with self.api.app.state.dishka_container() as request:
                    uow = await request.get(UnitOfWork)
                    async with uow:
                        await uow.exports.add(export)
                        await uow.commit()
                self.exports[name] = export.id
            return
        if target == "import":
            for name, tenant in [("own", self.alpha), ("foreign", self.beta)]:
                async with self.api.app.state.dishka_container() as request:
                    uow = await request.get(UnitOfWork)
                    sha256 = hashlib.sha256(self.unique("run").encode()).hexdigest()
                    async with uow:
                        run = await uow.import_runs.add_or_get(
                            new_run(tenant.admin.agency_id, sha256)
                        )
                        await uow.commit()
                    self.runs[name] = run.id
            return
        self.accounts = {
            "own": await self.alpha.account(self.unique("OWN"), collector="collector"),
            "colleague": await self.alpha.account(self.unique("COL"), collector="colleague"),
            "foreign": await self.beta.account(self.unique("FOR"), collector="collector"),
        }
        if target == "payment":
            for name in self.accounts:
                tenant = self.beta if name == "foreign" else self.alpha
                command = msgspec.convert(_new_payment(self, name), NewPayment)
                result = await self.api.run(MakePayment, tenant.admin, self.unique("key"), command)
                self.payments[name] = result.payment.id


def _queued_export(agency_id: uuid.UUID, now: datetime) -> Export:
    id_ = uuid.uuid4()
    parameters = ExportParameters(as_of=now.date())
    return Export(
        id=id_,
        agency_id=agency_id,
        kind=ExportKind.AGING,
        parameters=parameters,
        status=ExportStatus.QUEUED,
        file_name=file_name(ExportKind.AGING, parameters),
        storage_key=storage_key(agency_id, now, id_),
        requested_by=None,
        created_at=now,
    )


def _placement_file(scene: Scene) -> dict[str, Any]:
    text = placement_text(1).replace("A-000000", scene.unique("A"))
    return {"file": ("matrix.csv", text.encode(), "text/csv")}


def _new_user(scene: Scene) -> dict[str, Any]:
    return {
        "email": f"{scene.unique('u')}@alpha.example",
        "full_name": "New User",
        "role": "readonly",
        "password": "a long enough password",
    }


def _new_account(scene: Scene) -> dict[str, Any]:
    return {
        "debtor_id": str(scene.accounts["own"].debtor_id),
        "external_id": scene.unique("NEW"),
        "original_creditor": "Bank",
        "currency": "USD",
        "placed_balance": 100,
    }


def _new_payment(scene: Scene, target: str | None = None) -> dict[str, Any]:
    target = target or scene.target
    return {
        "account_id": str(scene.accounts[target].id),
        "amount": 100,
        "currency": "USD",
        "processor_id": str(scene.processors[target]),
        "payment_method": "pm_card_visa",
    }


RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/v1/auth/logout"): Rule(ALL, 204),
    ("GET", "/v1/me"): Rule(ALL, 200),
    ("GET", "/v1/users"): Rule(ADMIN, 200),
    ("POST", "/v1/users"): Rule(ADMIN, 201, body=_new_user),
    ("GET", "/v1/users/{user_id:uuid}"): Rule(ADMIN, 200, "user"),
    ("PATCH", "/v1/users/{user_id:uuid}"): Rule(
        ADMIN, 200, "user", body=lambda s: {"role": "readonly"}
    ),
    ("POST", "/v1/users/{user_id:uuid}/deactivate"): Rule(ADMIN, 200, "user"),
    ("GET", "/v1/debtors"): Rule(ALL, 200),
    ("POST", "/v1/debtors"): Rule(
        ADMIN, 201, body=lambda s: {"first_name": "New", "last_name": s.unique("Debtor")}
    ),
    ("GET", "/v1/debtors/{debtor_id:uuid}"): Rule(ALL, 200, "debtor"),
    ("PATCH", "/v1/debtors/{debtor_id:uuid}"): Rule(
        WRITERS, 200, "debtor", body=lambda s: {"emails": ["changed@example.com"]}
    ),
    ("GET", "/v1/accounts"): Rule(ALL, 200),
    ("POST", "/v1/accounts"): Rule(ADMIN, 201, body=_new_account),
    ("GET", "/v1/accounts/{account_id:uuid}"): Rule(ALL, 200, "account"),
    ("PUT", "/v1/accounts/{account_id:uuid}/status"): Rule(
        ADMIN, 200, "account", body=lambda s: {"status": "closed"}
    ),
    ("PUT", "/v1/accounts/{account_id:uuid}/collector"): Rule(
        ADMIN,
        200,
        "account",
        body=lambda s: {"collector_id": str(s.alpha.id_of("colleague"))},
    ),
    ("DELETE", "/v1/accounts/{account_id:uuid}/collector"): Rule(ADMIN, 200, "account"),
    ("GET", "/v1/accounts/{account_id:uuid}/activities"): Rule(ALL, 200, "account"),
    ("POST", "/v1/accounts/{account_id:uuid}/activities"): Rule(
        WRITERS, 201, "account", body=lambda s: {"type": "note", "note": "matrix"}
    ),
    ("GET", "/v1/audit-log"): Rule(ADMIN, 200),
    ("GET", "/v1/payment-processors"): Rule(ALL, 200),
    ("POST", "/v1/payment-processors"): Rule(
        ADMIN, 201, body=lambda s: {"name": s.unique("Processor"), "kind": "sandbox"}
    ),
    ("GET", "/v1/payments"): Rule(ALL, 200),
    ("GET", "/v1/accounts/{account_id:uuid}/payments"): Rule(ALL, 200, "account"),
    ("GET", "/v1/payments/{payment_id:uuid}"): Rule(ALL, 200, "payment"),
    ("POST", "/v1/payments"): Rule(WRITERS, 201, "account", body=_new_payment),
    ("POST", "/v1/payments/{payment_id:uuid}/refunds"): Rule(
        ADMIN, 201, "payment", body=lambda s: {"amount": 50}
    ),
    ("GET", "/v1/reports/collections"): Rule(REPORT_READERS, 200, query=PERIOD),
    ("GET", "/v1/reports/aging"): Rule(REPORT_READERS, 200),
    ("GET", "/v1/reports/recovery"): Rule(REPORT_READERS, 200, query=PERIOD),
    ("GET", "/v1/reports/collector-performance"): Rule(REPORT_READERS, 200, query=PERIOD),
    ("GET", "/v1/reports/imports"): Rule(REPORT_READERS, 200, query=PERIOD),
    ("GET", "/v1/file-sources"): Rule(ADMIN, 200),
    ("POST", "/v1/file-sources"): Rule(
        ADMIN,
        201,
        body=lambda s: {
            "name": s.unique("source"),
            "kind": "local",
            "directory": f"{s.alpha.slug}/drop",
        },
    ),
    ("GET", "/v1/file-sources/{source_id:uuid}"): Rule(ADMIN, 200, "file_source"),
    ("PATCH", "/v1/file-sources/{source_id:uuid}"): Rule(
        ADMIN, 200, "file_source", body=lambda s: {"schedule": "0 * * * *"}
    ),
    ("POST", "/v1/file-sources/{source_id:uuid}/deactivate"): Rule(ADMIN, 200, "file_source"),
    ("POST", "/v1/file-sources/{source_id:uuid}/poll"): Rule(ADMIN, 202, "file_source"),
    ("POST", "/v1/imports"): Rule(ADMIN, 202, files=_placement_file),
    ("GET", "/v1/imports"): Rule(REPORT_READERS, 200),
    ("GET", "/v1/imports/{run_id:uuid}"): Rule(REPORT_READERS, 200, "import"),
    ("GET", "/v1/imports/{run_id:uuid}/errors"): Rule(REPORT_READERS, 200, "import"),
    ("POST", "/v1/exports"): Rule(REPORT_READERS, 202, body=lambda s: {"kind": "aging"}),
    ("GET", "/v1/exports"): Rule(REPORT_READERS, 200),
    ("GET", "/v1/exports/{export_id:uuid}"): Rule(REPORT_READERS, 200, "export"),
    ("GET", "/v1/exports/nightly"): Rule(REPORT_READERS, 200),
    ("PUT", "/v1/exports/nightly"): Rule(ADMIN, 200, body=lambda s: {"kinds": ["aging"]}),
}


def app_routes(api: Api) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, documentation aside."""
    return {
        (method, route.path)
        for route in api.app.routes
        if isinstance(route, HTTPRoute) and not route.path.startswith("/schema")
        for method in route.methods - {"HEAD", "OPTIONS"}
    }


def expected(rule: Rule, role: str, target: str) -> int:
    if rule.target is not None:
        if target == "foreign":
            return 404
        reach_by_assignment = rule.target in ("account", "debtor", "payment")
        if reach_by_assignment and role == "collector" and target == "colleague":
            return 404
    return rule.success if role in rule.roles else 403


async def test_the_matrix_covers_every_route(api):
    assert app_routes(api) == set(RULES) | PUBLIC


async def cell(scene: Scene, route: tuple[str, str], rule: Rule, role: str, target: str) -> int:
    method, template = route
    path = template
    if rule.target == "account":
        path = template.replace("{account_id:uuid}", str(scene.accounts[target].id))
    elif rule.target == "debtor":
        path = template.replace("{debtor_id:uuid}", str(scene.accounts[target].debtor_id))
    elif rule.target == "user":
        path = template.replace("{user_id:uuid}", str(scene.users[target]))
    elif rule.target == "payment":
        path = template.replace("{payment_id:uuid}", str(scene.payments[target]))
    elif rule.target == "file_source":
        path = template.replace("{source_id:uuid}", str(scene.file_sources[target]))
    elif rule.target == "import":
        path = template.replace("{run_id:uuid}", str(scene.runs[target]))
    elif rule.target == "export":
        path = template.replace("{export_id:uuid}", str(scene.exports[target]))
    headers = scene.alpha.headers[role]
    if method == "POST" and template.startswith("/v1/payments"):
        headers = {**headers, "Idempotency-Key": scene.unique("matrix")}
    if route == ("POST", "/v1/auth/logout"):  # don't end the session the other cells use
        email = f"{role}@alpha.example"
        token = (await scene.api.sign_in(email))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
    if rule.files is not None:
        response = await scene.api.client.post(path, headers=headers, files=rule.files(scene))
        return response.status_code
    body = rule.body(scene) if rule.body else None
    response = await scene.api.client.request(
        method, path, headers=headers, json=body, params=rule.query
    )
    return response.status_code


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_gets_exactly_what_the_policy_allows(api, role):
    alpha, beta = await api.tenant("alpha"), await api.tenant("beta")
    sandbox = NewPaymentProcessor(name="Sandbox", kind="sandbox")
    alpha_processor = (await api.run(AddPaymentProcessor, alpha.admin, sandbox)).id
    beta_processor = (await api.run(AddPaymentProcessor, beta.admin, sandbox)).id
    processors = {"own": alpha_processor, "colleague": alpha_processor, "foreign": beta_processor}
    counter = itertools.count()
    mismatches = []
    for route, rule in RULES.items():
        own_or_foreign = ("own", "foreign")
        targets = {
            "user": own_or_foreign,
            "file_source": own_or_foreign,
            "import": own_or_foreign,
            "export": own_or_foreign,
            None: ("own",),
        }.get(rule.target, TARGETS)
        for target in targets:
            scene = Scene(api, alpha, beta, counter, processors, target)
            await scene.prepare(rule.target)
            got = await cell(scene, route, rule, role, target)
            want = expected(rule, role, target)
            if got != want:
                mismatches.append(f"{route[0]} {route[1]} as {role} on {target}: {got} != {want}")
    assert mismatches == []
