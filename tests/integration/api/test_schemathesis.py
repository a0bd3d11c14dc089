"""The whole API against its own OpenAPI document: a property-based run with schemathesis.

Every operation of ``/schema/openapi.json`` is called with generated inputs, valid ones and
deliberately invalid ones, each as an agency admin or as a collector, on SQLite and on
PostgreSQL. The run fails on a server error, on a status code the operation does not
document, and on a response whose content type or body differs from the documented one.

The app runs in process over ASGI (schemathesis drives it on an event loop of its own), on a
database seeded with two agencies, so that generated ids sometimes name real objects — of the
caller's agency, of another agency, ones a collector may not reach — and success paths are
exercised beside the 404s. Inputs the run once found a 500 with (NUL characters, amounts past
64 bits, times out of range in UTC, forged cursors) are sent first, every time.
"""

from __future__ import annotations

import base64
import json
import tempfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import schemathesis
from dishka import Provider, Scope, provide
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.schemas import BaseSchema

from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.export import Export, ExportKind, ExportParameters, ExportStatus
from debtflow_core.domain.imports import FileSourceKind
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.activities import NewActivity, RecordActivity
from debtflow_core.use_cases.auth import AuthPolicy
from debtflow_core.use_cases.file_sources import CreateFileSource, NewFileSource
from debtflow_core.use_cases.imports import ImportFile, ImportPlacementFile
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.payments import MakePayment, NewPayment
from debtflow_http.app import create_app
from tests.integration.api.conftest import PASSWORD, Api, Tenant, TestAdapters, make_settings
from tests.support.imports import placement_text

# Examples per operation and generation mode (valid inputs, then invalid ones). Derandomized:
# CI sends the same requests every time. No shrinking: a failure is reported as found.
MAX_EXAMPLES = 10

# What every response must satisfy. Checks that need more than the document (that valid
# input is accepted, say) don't apply: most generated ids name nothing, and 404 is the answer.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
        },
    }
)

ROLES = ("admin", "collector")

# Operations that end or rotate the session of the token they are given (a refresh token
# presented twice revokes its session): each of their examples gets a session of its own.
SESSION_ENDING = frozenset({"POST /v1/auth/logout", "POST /v1/auth/refresh"})


# Routes whose credential is a signature over all their inputs: a generated request never
# holds a valid one (tests/integration/api/test_imports_api.py follows real links).
SIGNED_LINKS = frozenset({"GET /v1/files/{key}"})

NUL = "a\x00b"  # PostgreSQL stores no NUL character in text
HUGE = 2**63  # one past the largest BIGINT
UTC_BEFORE_YEAR_1 = "0001-01-01T00:00:00+14:00"
UTC_AFTER_YEAR_9999 = "9999-12-31T23:59:59-14:00"
NO_ID = "00000000-0000-0000-0000-000000000000"


def _forged_cursor(**position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _edge_cases(ids: dict[str, list[str]]) -> list[tuple[str, str, dict[str, Any], int]]:
    """Inputs that once got a 500 (on PostgreSQL, or on both databases), with the status each
    must get instead: method, path, the case's parts, status. Sent as the admin."""
    account, debtor, processor = ids["account_id"][0], ids["debtor_id"][0], ids["processor_id"][0]
    names = {"first_name": "Ada", "last_name": "Lovelace"}
    place = {"debtor_id": debtor, "original_creditor": "Bank", "currency": "USD"}
    activities = "/v1/accounts/{account_id}/activities"
    return [
        ("POST", "/v1/debtors", {"body": {**names, "first_name": NUL}}, 422),
        ("POST", "/v1/debtors", {"body": {**names, "phones": [{"number": NUL}]}}, 422),
        ("POST", "/v1/debtors", {"body": {**names, "emails": [f"{NUL}@example.com"]}}, 422),
        (
            "POST",
            "/v1/debtors",
            {
                "body": {
                    **names,
                    "address": {"line1": NUL, "city": "C", "state": "S", "postal_code": "P"},
                }
            },
            422,
        ),
        (
            "PATCH",
            "/v1/debtors/{debtor_id}",
            {"path_parameters": {"debtor_id": debtor}, "body": {"phones": [{"number": NUL}]}},
            422,
        ),
        ("GET", "/v1/debtors", {"query": {"text": NUL}}, 422),
        (
            "POST",
            "/v1/accounts",
            {"body": {**place, "external_id": NUL, "placed_balance": 1}},
            422,
        ),
        (
            "POST",
            "/v1/accounts",
            {"body": {**place, "external_id": "EDGE-1", "placed_balance": HUGE}},
            422,
        ),
        ("GET", "/v1/accounts", {"query": {"min_balance": HUGE}}, 422),
        ("GET", "/v1/accounts", {"query": {"text": NUL}}, 422),
        (
            "GET",
            "/v1/accounts",
            {
                "query": {
                    "cursor": _forged_cursor(sort="newest", id=NO_ID, placed_at=UTC_BEFORE_YEAR_1)
                }
            },
            422,
        ),
        (
            "GET",
            "/v1/accounts",
            {
                "query": {
                    "sort": "balance_asc",
                    "cursor": _forged_cursor(sort="balance_asc", id=NO_ID, balance=HUGE),
                }
            },
            422,
        ),
        (
            "POST",
            activities,
            {"path_parameters": {"account_id": account}, "body": {"type": "note", "note": NUL}},
            422,
        ),
        (
            "POST",
            activities,
            {
                "path_parameters": {"account_id": account},
                "body": {
                    "type": "promise_to_pay",
                    "promise": {"amount": HUGE, "due_on": "2026-04-01"},
                },
            },
            422,
        ),
        ("GET", "/v1/audit-log", {"query": {"since": UTC_BEFORE_YEAR_1}}, 422),
        ("GET", "/v1/audit-log", {"query": {"until": UTC_AFTER_YEAR_9999}}, 422),
        ("GET", "/v1/audit-log", {"query": {"entity_type": NUL}}, 422),
        (
            "GET",
            "/v1/audit-log",
            {"query": {"cursor": _forged_cursor(occurred_at="2026-03-02T09:00:00", id=NO_ID)}},
            422,
        ),
        ("GET", "/v1/users", {"query": {"cursor": _forged_cursor(email=NUL)}}, 422),
        (
            "POST",
            "/v1/users",
            {
                "body": {
                    "email": f"{NUL}@example.com",
                    "full_name": "Edge",
                    "role": "collector",
                    "password": PASSWORD,
                }
            },
            422,
        ),
        ("POST", "/v1/auth/token", {"body": {"email": NUL, "password": PASSWORD}}, 401),
        (
            "POST",
            "/v1/payments",
            {
                "headers": {"Idempotency-Key": "edge-1"},
                "body": {
                    "account_id": account,
                    "amount": HUGE,
                    "currency": "USD",
                    "processor_id": processor,
                    "payment_method": "pm_card_visa",
                },
            },
            422,
        ),
    ]


class Unthrottled(Provider):
    """Sign-in limits far above what the run needs: it signs in for every example of
    SESSION_ENDING, and sign-in throttling has tests of its own."""

    @provide(scope=Scope.APP, override=True)
    def auth_policy(self) -> AuthPolicy:
        return AuthPolicy(logins_per_email=1_000_000, logins_per_client=1_000_000)


def _pick(value: Any, choices: list[Any]) -> Any:
    """One of ``choices``, or ``value`` itself (one time in len+1), decided by ``value``:
    the same generated input always gets the same substitute, so examples replay."""
    index = zlib.crc32(repr(value).encode()) % (len(choices) + 1)
    return value if index == len(choices) else choices[index]


class Target:
    """The seeded agency the run acts in: who signs in, and the ids worth aiming at."""

    def __init__(self, schema: BaseSchema, tenant: Tenant, ids: dict[str, list[str]]) -> None:
        self.schema = schema
        self._emails = {role: f"{role}@{tenant.slug}.example" for role in ROLES}
        self.ids = ids
        # The collector's own user is aimed at only by the collector: an admin example could
        # deactivate it, and the rest of the run would be 401s.
        self._collector_id = str(tenant.id_of("collector"))
        self._tokens: dict[str, dict[str, str]] = {}
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)

    def sign_in(self, role: str) -> dict[str, str]:
        body = {"email": self._emails[role], "password": PASSWORD}
        response = self.schema["/v1/auth/token"]["POST"].Case(body=body).call()
        assert response.status_code == 200, response.text
        return response.json()

    def headers(self, role: str, operation: APIOperation) -> tuple[dict[str, str], str]:
        """The Authorization header for ``role``, and a refresh token of the same session."""
        if operation.label in SESSION_ENDING:
            pair = self.sign_in(role)
            return {"Authorization": f"Bearer {pair['access_token']}"}, pair["refresh_token"]
        if role not in self._tokens:
            self._tokens[role] = self.sign_in(role)
        return {"Authorization": f"Bearer {self._tokens[role]['access_token']}"}, ""

    def aim(self, case: Case, role: str, refresh_token: str) -> None:
        """Point some generated ids and credentials at seeded objects."""
        users = self.ids["user_id"]
        aimed = {
            **self.ids,
            "user_id": [*users, self._collector_id] if role == "collector" else users,
            "email": [self._emails[role]],
            "password": [PASSWORD],
            "currency": ["USD"],
            "payment_method": ["pm_card_visa"],
            # A report's period: random dates are rarely in order and within a year.
            "from": ["2026-03-01"],
            "to": ["2026-03-31"],
            "refresh_token": [refresh_token] if refresh_token else [],
        }
        for container in (case.path_parameters, case.query, case.body):
            if isinstance(container, dict):
                for name, value in container.items():
                    container[name] = _aimed(value, aimed.get(name))

    def check(self, case: Case, role: str) -> None:
        """Send a generated case as ``role``, aimed, and validate the response."""
        headers, refresh_token = self.headers(role, case.operation)
        self.aim(case, role, refresh_token)
        response = case.call_and_validate(headers=headers)
        self.statuses[case.operation.label][response.status_code] += 1


def _aimed(value: Any, choices: list[str] | None) -> Any:
    if not choices or not isinstance(value, str):
        return value
    if _is_uuid(choices[0]) and not _is_uuid(value):
        return value  # a malformed id of a negative example stays malformed
    return _pick(value, choices)


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


async def _seed(api: Api) -> tuple[Tenant, dict[str, list[str]]]:
    """Two agencies with a user of each role; accounts assigned to the collector, to their
    colleague and to no one; one in the other agency; an activity, a payment processor, a
    payment, a file source in each agency, an imported placement file and an export."""
    alpha = await api.tenant("alpha")
    beta = await api.tenant("beta")
    mine = await alpha.account("A-1", collector="collector")
    theirs = await alpha.account("A-2", collector="colleague")
    settled = await alpha.account("A-3", balance=0)
    foreign = await beta.account("B-1", collector="collector")
    await api.run(
        RecordActivity, alpha.admin, mine.id, NewActivity(type=ActivityType.NOTE, note="Seeded")
    )
    processor = await api.run(
        AddPaymentProcessor,
        alpha.admin,
        NewPaymentProcessor(name="Sandbox", kind=ProcessorKind.SANDBOX),
    )
    paid = await api.run(
        MakePayment,
        alpha.admin,
        "seeded-payment",
        NewPayment(
            account_id=mine.id,
            amount=100,
            currency="USD",
            processor_id=processor.id,
            payment_method="pm_card_visa",
        ),
    )
    sources = [
        str((await api.run(CreateFileSource, tenant.admin, command)).id)
        for tenant, command in [
            (alpha, NewFileSource(name="Drop", kind=FileSourceKind.LOCAL, directory="alpha/drop")),
            (beta, NewFileSource(name="Drop", kind=FileSourceKind.LOCAL, directory="beta/drop")),
        ]
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "seeded.csv"
        path.write_text(placement_text(4, bad_every=2))
        # Imported here rather than queued: the in-process broker must start on the app's loop.
        run = await api.run(
            ImportPlacementFile, alpha.admin, ImportFile(path=path, file_name="seeded.csv")
        )
    # Stored rather than requested, for the same reason.
    now = api.clock.now()
    export = Export(
        id=uuid4(),
        agency_id=alpha.admin.agency_id,
        kind=ExportKind.AGING,
        parameters=ExportParameters(as_of=now.date()),
        status=ExportStatus.QUEUED,
        file_name="aging.csv",
        storage_key=f"{alpha.admin.agency_id}/exports/seeded.csv",
        requested_by=alpha.id_of("admin"),
        created_at=now,
    )
    async with api.app.state.dishka_container() as request:
        uow = await request.get(UnitOfWork)
        async with uow:
            await uow.exports.add(export)
            await uow.commit()
    accounts = [str(a.id) for a in (mine, theirs, settled, foreign)]
    debtors = [str(a.debtor_id) for a in (mine, theirs, settled, foreign)]
    users = [str(alpha.id_of(name)) for name in ("admin", "colleague", "readonly")]
    users.append(str(beta.id_of("collector")))
    collector = str(alpha.id_of("collector"))
    ids = {
        "account_id": accounts,
        "debtor_id": debtors,
        "user_id": users,
        "collector_id": [collector, *users],
        "actor_id": [collector, *users],
        "entity_id": [*accounts, *debtors, collector, *users],
        "processor_id": [str(processor.id)],
        "payment_id": [str(paid.payment.id)],
        "source_id": sources,
        "run_id": [str(run.id)],
        "export_id": [str(export.id)],
    }
    return alpha, ids


@pytest.fixture
async def target(api: Api, database_url: str, sources_root: Path) -> Target:
    alpha, ids = await _seed(api)
    # A second app on the seeded database: schemathesis runs it on an event loop of its own.
    # Warnings only: a JSON log line per request would cost more than some requests.
    settings = make_settings(database_url, log_level="warning", sources_root=str(sources_root))
    app = create_app(settings, TestAdapters(api.clock), Unthrottled())
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=CONFIG)
    return Target(schema, alpha, ids)


def _has_inputs(operation: APIOperation) -> bool:
    """Whether there is anything to make invalid (``GET /health`` takes nothing)."""
    return bool(operation.body) or next(operation.iter_parameters(), None) is not None


def _fuzz(target: Target, operation: APIOperation, mode: GenerationMode) -> None:
    # Health checks off: drawing from JSON schemas is slow and filters a lot by nature.
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(ROLES))
    def examples(case: Case, role: str) -> None:
        target.check(case, role)

    examples()


def test_every_response_is_documented(target: Target) -> None:
    """Every operation in one test per database, reporting all failing operations at once.

    (schemathesis' own pytest parametrization, ``schemathesis.pytest.from_fixture``, fails
    on pytest 9.2, whose nodes no longer have the ``_nodeid`` it sets.)
    """
    failures: dict[str, BaseException] = {}
    for method, path, parts, expected in _edge_cases(target.ids):
        case = target.schema[path][method].Case(**parts)
        headers, _ = target.headers("admin", case.operation)
        try:
            response = case.call_and_validate(headers=headers)
            assert response.status_code == expected, f"{response.status_code}: {response.text}"
        except (Exception, BaseExceptionGroup) as error:
            failures[f"{case.operation.label} with {parts}"] = error
    for result in target.schema.get_all_operations():
        operation = result.ok()
        modes = list(GenerationMode) if _has_inputs(operation) else [GenerationMode.POSITIVE]
        for mode in modes:
            try:
                _fuzz(target, operation, mode)
            except (Exception, BaseExceptionGroup) as error:
                failures[f"{operation.label} ({mode.value})"] = error
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())
    me = target.schema["/v1/me"]["GET"]
    for role in ROLES:  # the tokens stayed valid, so no example got a 401 it didn't ask for
        headers, _ = target.headers(role, me)
        assert me.Case().call(headers=headers).status_code == 200, f"{role} was signed out"
    unreached = [
        label
        for label, statuses in target.statuses.items()
        if label.startswith("GET ")
        and label not in SIGNED_LINKS
        and not any(200 <= status < 300 for status in statuses)
    ]
    assert not unreached, f"never found what was seeded: {unreached}"
