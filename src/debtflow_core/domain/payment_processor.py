from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec


class ProcessorKind(enum.StrEnum):
    SANDBOX = "sandbox"
    STRIPE = "stripe"


class PaymentProcessor(msgspec.Struct, frozen=True, kw_only=True):
    """A way an agency takes payments: its Stripe account, or the sandbox for trials."""

    id: UUID
    agency_id: UUID
    name: str
    kind: ProcessorKind
    active: bool
    created_at: datetime
