from __future__ import annotations

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.agency import Agency, validate_slug
from debtflow_core.errors import Conflict, NotFound
from debtflow_core.ids import new_id
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.validation import require_text


class NewAgency(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    name: str


class CreateAgency:
    """Open a new agency (tenant). A platform-operator action: it takes no agency actor.

    The slug must be free. The creation is audited as done by the platform.
    """

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, command: NewAgency) -> Agency:
        agency = Agency(
            id=new_id(),
            slug=validate_slug(command.slug),
            name=require_text(command.name, field="name"),
            created_at=self._clock.now(),
        )
        async with self._uow as uow:
            if await uow.agencies.get_by_slug(agency.slug) is not None:
                raise Conflict(f"the slug {agency.slug!r} is taken")
            await uow.agencies.add(agency)
            await uow.audit_log.add(
                audit_entry(
                    Actor.system(agency.id),
                    "agency.created",
                    entity_id=agency.id,
                    before=None,
                    after=agency,
                    at=agency.created_at,
                )
            )
            await uow.commit()
        return agency


class FindAgency:
    """The agency with this slug; NotFound if there is none. A platform-operator lookup,
    like :class:`CreateAgency`: it takes no agency actor, so only operator entrypoints (the
    command line) offer it — an agency's own users never look up another agency.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, slug: str) -> Agency:
        async with self._uow as uow:
            agency = await uow.agencies.get_by_slug(slug)
        if agency is None:
            raise NotFound(f"no agency has the slug {slug!r}")
        return agency
