from __future__ import annotations

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.errors import ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.policy import require_admin
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.processor_kinds import ProcessorKinds
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.validation import require_text


class NewPaymentProcessor(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    kind: ProcessorKind


class AddPaymentProcessor:
    """Add a way for the agency to take payments (its Stripe account, or the sandbox).
    Agency admins only. A kind whose gateway this installation has not configured (Stripe
    without an API key) is refused, rather than failing every payment later."""

    def __init__(self, uow: UnitOfWork, clock: Clock, kinds: ProcessorKinds) -> None:
        self._uow = uow
        self._clock = clock
        self._kinds = kinds

    async def execute(self, actor: Actor, command: NewPaymentProcessor) -> PaymentProcessor:
        require_admin(actor)
        kind = ProcessorKind(command.kind)
        if (missing := self._kinds.missing(kind)) is not None:
            raise ValidationFailed(missing, field="kind")
        processor = PaymentProcessor(
            id=new_id(),
            agency_id=actor.agency_id,
            name=require_text(command.name, field="name", max_length=100),
            kind=kind,
            active=True,
            created_at=self._clock.now(),
        )
        async with self._uow as uow:
            await uow.payment_processors.add(processor)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "payment_processor.added",
                    entity_id=processor.id,
                    before=None,
                    after=processor,
                    at=processor.created_at,
                )
            )
            await uow.commit()
        return processor


class ListPaymentProcessors:
    """The agency's payment processors, by name. Anyone in the agency (collectors choose
    one when they take a payment)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor) -> list[PaymentProcessor]:
        async with self._uow as uow:
            return await uow.payment_processors.list(actor.agency_id)
