"""Typed domain errors. Entrypoints map them to their protocol (HTTP problem+json, CLI lines)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the core raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The object does not exist, or lies outside the actor's reach (never "forbidden")."""

    @classmethod
    def of(cls, entity: str, id_: object) -> NotFound:
        return cls(f"{entity} {id_} was not found")


class PermissionDenied(DomainError):
    """The actor can see the object but their role may not perform the action."""


class Conflict(DomainError):
    """The action clashes with the current state: a duplicate key or a forbidden transition."""


class ValidationFailed(DomainError):
    """Input breaks a business rule. ``field`` names the offending input when there is one."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class Deferred(DomainError):
    """Not yet: what this needs has not happened. A worker's task that raises it is tried
    again later."""


class GatewayUnavailable(DomainError):
    """An external gateway gave no answer; the caller may retry later.

    ``request_sent`` is ``False`` when the request certainly never left (an open circuit
    breaker): nothing happened at the gateway. Otherwise the outcome is unknown.
    """

    def __init__(
        self, detail: str, *, retry_after_seconds: int | None = None, request_sent: bool = True
    ) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
        self.request_sent = request_sent


class GatewayRefused(GatewayUnavailable):
    """The gateway answered and refused the request as invalid (a refund of a payment
    already refunded, say): nothing happened there, and asking again the same way is
    refused again.

    Callers handle it as the GatewayUnavailable with ``request_sent=False`` it is. A
    circuit breaker does not count it as a failure: the gateway is up, and answering.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail, request_sent=False)


class SourceUnavailable(DomainError):
    """A file source could not be reached or refused us: down, wrong credentials, or a host
    key that is not the pinned one. Polling again later may succeed."""


class SourceFileChanged(DomainError):
    """A file changed on the source while it was being read; read it again later."""


class StorageUnavailable(DomainError):
    """Object storage could not be reached or refused us (down, timed out, wrong
    credentials, a missing bucket). Trying again later may succeed."""


class Unauthenticated(DomainError):
    """The credentials or token are missing, wrong, expired or revoked."""


class RateLimited(DomainError):
    """Too many attempts; try again after ``retry_after_seconds``."""

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
