"""Readiness: can this process reach what it needs right now?"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

import msgspec

CHECK_TIMEOUT_SECONDS = 2.0


class DependencyState(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class Dependency(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: DependencyState
    required: bool
    detail: str | None = None


class ReadinessReport(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    dependencies: list[Dependency]


Probe = Callable[[], Awaitable[object]]


class DependencyDown(Exception):
    """A probe's verdict whose message is safe to report as the detail (no URL, no
    secret): a circuit breaker's state, say."""


class DatabaseProbe:
    """How to check the database: persistence providers say, the readiness check asks."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe


class Readiness:
    """Runs every dependency's probe concurrently, each within a short timeout.

    The process is ready when every required dependency is up. A probe's failure is
    reported by its exception type only, never its message (which may hold a URL),
    unless it is a :class:`DependencyDown`.
    """

    def __init__(self) -> None:
        self._probes: list[tuple[str, bool, Probe]] = []

    def add(self, name: str, probe: Probe, *, required: bool = True) -> None:
        self._probes.append((name, required, probe))

    async def check(self) -> ReadinessReport:
        results = await asyncio.gather(
            *(self._run(name, required, probe) for name, required, probe in self._probes)
        )
        ready = all(d.state is DependencyState.UP for d in results if d.required)
        return ReadinessReport(ready=ready, dependencies=list(results))

    @staticmethod
    async def _run(name: str, required: bool, probe: Probe) -> Dependency:
        try:
            await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
        except Exception as error:  # any failure means "down"; the reason is in its type
            if isinstance(error, DependencyDown):
                detail = str(error)
            elif isinstance(error, TimeoutError):
                detail = "timed out"
            else:
                detail = type(error).__name__
            return Dependency(
                name=name, state=DependencyState.DOWN, required=required, detail=detail
            )
        return Dependency(name=name, state=DependencyState.UP, required=required)
