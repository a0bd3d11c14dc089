"""The composition root builds a valid graph for each database and serves every use case."""

from __future__ import annotations

import inspect
import pkgutil
import shutil
from importlib import import_module
from pathlib import Path

import pytest
from dishka import Provider, Scope, provide
from dishka.exceptions import ImplicitOverrideDetectedError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

import debtflow_core.use_cases
from debtflow_adapters.composition import make_container
from debtflow_adapters.memory import FastPasswordHasher, InMemoryUnitOfWork
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.security.argon2 import Argon2PasswordHasher
from debtflow_adapters.settings import Settings
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_core.ports.unit_of_work import UnitOfWork

# Use cases the composition root does not serve yet; none at the moment.
NOT_WIRED_YET: frozenset[str] = frozenset()


def _use_case_classes() -> list[type]:
    """Every public class with an ``execute`` method in ``debtflow_core.use_cases``, so a
    use case added to the core without being wired fails here."""
    found = []
    for module_info in pkgutil.iter_modules(debtflow_core.use_cases.__path__):
        module = import_module(f"debtflow_core.use_cases.{module_info.name}")
        found += [
            cls
            for name, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__
            and not name.startswith("_")
            and name not in NOT_WIRED_YET
            and callable(getattr(cls, "execute", None))
        ]
    return found


USE_CASES = _use_case_classes()


def _settings(kind: str, tmp_path: Path) -> Settings:
    url = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'debtflow.db'}"
    return Settings.from_env({"DEBTFLOW_DATABASE_URL": url})


def test_the_core_has_use_cases_to_wire() -> None:
    assert len(USE_CASES) >= 23


@pytest.mark.parametrize(
    ("kind", "unit_of_work"), [("memory", InMemoryUnitOfWork), ("sqlite", SqlUnitOfWork)]
)
async def test_every_use_case_resolves(kind: str, unit_of_work: type, tmp_path: Path) -> None:
    container = make_container(_settings(kind, tmp_path))
    try:
        async with container() as request:
            for use_case in USE_CASES:
                assert isinstance(await request.get(use_case), use_case)
            assert isinstance(await request.get(UnitOfWork), unit_of_work)
            assert isinstance(await container.get(PasswordHasher), Argon2PasswordHasher)
    finally:
        await container.close()


async def test_one_request_shares_one_unit_of_work_and_requests_do_not(tmp_path: Path) -> None:
    container = make_container(_settings("memory", tmp_path))
    try:
        async with container() as first, container() as second:
            assert await first.get(UnitOfWork) is await first.get(UnitOfWork)
            assert await first.get(UnitOfWork) is not await second.get(UnitOfWork)
    finally:
        await container.close()


async def test_a_request_returns_a_connection_kept_for_a_block_that_never_came(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    shutil.copyfile(migrated_sqlite_template, tmp_path / "debtflow.db")
    container = make_container(_settings("sqlite", tmp_path))
    try:
        engine = await container.get(AsyncEngine)
        async with container() as request:
            uow = await request.get(UnitOfWork)
            async with uow:
                await uow.agencies.get_by_slug("alpha")
            assert engine.pool.checkedout() == 0
            uow.keep_for_next_block()
            async with uow:
                await uow.agencies.get_by_slug("beta")
            assert engine.pool.checkedout() == 1
        assert engine.pool.checkedout() == 0
    finally:
        await container.close()


async def test_closing_the_container_disposes_of_the_engine(tmp_path: Path) -> None:
    container = make_container(_settings("sqlite", tmp_path))
    engine = await container.get(AsyncEngine)
    async with engine.connect():
        pass
    pool = engine.pool  # dispose() gives the engine a new pool; the old one is closed
    assert isinstance(pool, QueuePool)
    assert pool.checkedin() == 1

    await container.close()

    assert pool.checkedin() == 0


class _FastHashing(Provider):
    hasher = provide(FastPasswordHasher, provides=PasswordHasher, scope=Scope.APP, override=True)


async def test_extra_providers_override_declared_factories(tmp_path: Path) -> None:
    container = make_container(_settings("memory", tmp_path), _FastHashing())
    try:
        assert isinstance(await container.get(PasswordHasher), FastPasswordHasher)
    finally:
        await container.close()


def test_an_undeclared_override_is_rejected(tmp_path: Path) -> None:
    class SilentOverride(Provider):
        hasher = provide(FastPasswordHasher, provides=PasswordHasher, scope=Scope.APP)

    with pytest.raises(ImplicitOverrideDetectedError):
        make_container(_settings("memory", tmp_path), SilentOverride())
