from __future__ import annotations

from datetime import datetime
from typing import Protocol

from debtflow_core.domain.gateway_event import GatewayEvent


class WebhookVerifier(Protocol):
    """Checks that a webhook came from the gateway and decodes it.

    ``verify`` returns the event, or ``None`` for a genuine event of a type DebtFlow does
    not act on; it raises ValidationFailed for a missing, forged or stale signature or a
    malformed payload.
    """

    def verify(
        self, payload: bytes, signature: str | None, received_at: datetime
    ) -> GatewayEvent | None: ...


class GatewayEventRepository(Protocol):
    """Gateway events by id: each is stored and processed once, whatever the redeliveries."""

    async def record(self, event: GatewayEvent) -> bool:
        """Store a new event; ``False`` (and nothing changes) if its id is known."""
        ...

    async def get(self, id_: str) -> GatewayEvent | None: ...

    async def unapplied(
        self, *, received_before: datetime, received_after: datetime, limit: int
    ) -> list[str]:
        """The ids of events not processed yet, received between ``received_after`` and
        ``received_before``, oldest first, at most ``limit``."""
        ...

    async def mark_processed(self, id_: str, outcome: str, at: datetime) -> str | None:
        """Record the outcome of processing the event, unless one is recorded already
        (the same event processed twice at once): the first stays. Returns the outcome
        stored, ``None`` for an unknown event."""
        ...
