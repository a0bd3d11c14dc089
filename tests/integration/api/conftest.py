"""The real Litestar app on a real database (SQLite and PostgreSQL), driven over ASGI."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import FastPasswordHasher, FixedClock
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_adapters.settings import Settings
from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account
from debtflow_core.domain.debtor import Debtor
from debtflow_core.domain.user import Role
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_core.use_cases.accounts import AssignCollector, NewAccount, PlaceAccount
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.users import CreateUser, NewUser
from debtflow_http.app import create_app
from tests.support.stripe_emulator import stripe_emulator  # noqa: F401

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
JWT_SECRET = "test-secret-" + "x" * 40
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class TestAdapters(Provider):
    """Fast password hashing and a clock the test moves: the swap-in an API test needs."""

    __test__ = False  # a provider, not a test class

    def __init__(self, clock: FixedClock) -> None:
        super().__init__()
        self._clock = clock

    hasher = provide(FastPasswordHasher, provides=PasswordHasher, scope=Scope.APP, override=True)

    @provide(scope=Scope.APP, override=True)
    def clock(self) -> Clock:
        return self._clock


class KeptJobs(Provider):
    """Jobs kept in a list rather than run, so a test sees what was sent."""

    def __init__(self, queue: InMemoryJobQueue) -> None:
        super().__init__()
        self._queue = queue

    @provide(scope=Scope.APP, override=True)
    def job_queue(self) -> JobQueue:
        return self._queue


class Tenant:
    """An agency with one user of each role (two collectors) and their access headers."""

    def __init__(self, api: Api, slug: str) -> None:
        self.api = api
        self.slug = slug
        self.actors: dict[str, Actor] = {}
        self.headers: dict[str, dict[str, str]] = {}

    @property
    def admin(self) -> Actor:
        return self.actors["admin"]

    def id_of(self, name: str) -> UUID:
        user_id = self.actors[name].user_id
        assert user_id is not None
        return user_id

    async def debtor(self, first: str = "Ada", last: str = "Lovelace") -> Debtor:
        return await self.api.run(
            CreateDebtor, self.admin, NewDebtor(first_name=first, last_name=last)
        )

    async def account(
        self, external_id: str, *, collector: str | None = None, balance: int = 10_000
    ) -> Account:
        debtor = await self.debtor()
        account = await self.api.run(
            PlaceAccount,
            self.admin,
            NewAccount(
                debtor_id=debtor.id,
                external_id=external_id,
                original_creditor="First Bank",
                currency="USD",
                placed_balance=balance,
            ),
        )
        if collector is not None:
            account = await self.api.run(
                AssignCollector, self.admin, account.id, self.id_of(collector)
            )
        return account


class Api:
    def __init__(self, app: Litestar, client: AsyncTestClient[Litestar], clock: FixedClock):
        self.app = app
        self.client = client
        self.clock = clock

    async def run(self, use_case: type[Any], *args: Any) -> Any:
        """Run a core use case in the app's own container: seeding without HTTP."""
        async with self.app.state.dishka_container() as request:
            return await (await request.get(use_case)).execute(*args)

    async def sign_in(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/auth/token", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def tenant(self, slug: str) -> Tenant:
        tenant = Tenant(self, slug)
        agency = await self.run(CreateAgency, NewAgency(slug=slug, name=slug.title()))
        system = Actor.system(agency.id)
        for name, role in [
            ("admin", Role.AGENCY_ADMIN),
            ("collector", Role.COLLECTOR),
            ("colleague", Role.COLLECTOR),
            ("readonly", Role.READONLY),
        ]:
            email = f"{name}@{slug}.example"
            user = await self.run(
                CreateUser,
                system,
                NewUser(email=email, full_name=name.title(), role=role, password=PASSWORD),
            )
            tenant.actors[name] = Actor(user_id=user.id, agency_id=agency.id, role=role)
            token = (await self.sign_in(email))["access_token"]
            tenant.headers[name] = {"Authorization": f"Bearer {token}"}
        return tenant


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``create_app`` points the root logger at stderr as JSON; undo it after each test, or
    later tests log to a stream pytest has closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, migrated_sqlite_template: Path, tmp_path: Path
) -> str:
    if request.param == "sqlite":
        path = tmp_path / "api.db"
        shutil.copyfile(migrated_sqlite_template, path)
        return f"sqlite:///{path}"
    engine: AsyncEngine = request.getfixturevalue("postgres_engine")
    return engine.url.render_as_string(hide_password=False)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values = {
        "database_url": database_url,
        "jwt_secret": JWT_SECRET,
        "jwt_secret_generated": False,
        "storage_url": "memory://",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def sources_root(tmp_path: Path) -> Path:
    """The test's own sources root: ``api`` enables local file sources under it."""
    root = tmp_path / "sources"
    root.mkdir()
    return root


@pytest.fixture
async def api(database_url: str, sources_root: Path) -> AsyncIterator[Api]:
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(
        make_settings(database_url, sources_root=str(sources_root)), TestAdapters(clock)
    )
    async with AsyncTestClient(app) as client:
        yield Api(app, client, clock)


@pytest.fixture
async def alpha(api: Api) -> Tenant:
    return await api.tenant("alpha")
