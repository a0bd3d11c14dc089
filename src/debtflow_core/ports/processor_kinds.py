from __future__ import annotations

from typing import Protocol

from debtflow_core.domain.payment_processor import ProcessorKind


class ProcessorKinds(Protocol):
    """Which kinds of payment processor this installation can charge through: a kind
    needs its gateway configured (Stripe, its API key)."""

    def missing(self, kind: ProcessorKind) -> str | None:
        """``None`` if ``kind`` can take payments here, else what is missing, for people."""
        ...
