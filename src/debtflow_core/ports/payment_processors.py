from __future__ import annotations

from typing import Protocol
from uuid import UUID

from debtflow_core.domain.payment_processor import PaymentProcessor


class PaymentProcessorRepository(Protocol):
    async def add(self, processor: PaymentProcessor) -> None: ...

    async def get(self, id_: UUID) -> PaymentProcessor | None: ...

    async def list(self, agency_id: UUID) -> list[PaymentProcessor]:
        """The agency's processors ordered by name."""
        ...
