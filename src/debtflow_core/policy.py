"""The access policy: tenancy, roles and object-level reach, in one place.

- Tenancy: an actor reaches only objects of its own agency; anything else is NotFound.
- Roles: ``readonly`` never writes; only ``agency_admin`` manages users, placement,
  assignment and statuses.
- Object level: a collector reaches only accounts assigned to them (and their debtors);
  an account out of reach is NotFound, so its existence is not disclosed.
- Reports: agency-wide figures, read by agency admins and read-only users; a collector
  gets PermissionDenied (their work is bounded by their accounts, a report is not).
- Exports: reports as files, so the same readers request, list and read them; asking
  for one changes no business data, so read-only users may. Another agency's export is
  NotFound. Which reports are exported every night is the agency's configuration: only
  agency admins choose it.

Use cases on an existing object check reach before role: the answer for an object in
another agency is NotFound whatever the actor's role.
"""

from __future__ import annotations

from typing import Protocol, TypeVar
from uuid import UUID

from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account
from debtflow_core.domain.user import Role
from debtflow_core.errors import NotFound, PermissionDenied


class Tenanted(Protocol):
    @property
    def agency_id(self) -> UUID: ...


T = TypeVar("T", bound=Tenanted)


def require_writer(actor: Actor) -> None:
    if actor.role is Role.READONLY:
        raise PermissionDenied("read-only users cannot change anything")


def require_admin(actor: Actor) -> None:
    if actor.role is not Role.AGENCY_ADMIN:
        raise PermissionDenied("only an agency admin may do this")


def require_report_reader(actor: Actor) -> None:
    """Reports add up the whole agency, beyond the accounts a collector may reach: agency
    admins and read-only users read them; collectors may not."""
    if actor.role is Role.COLLECTOR:
        raise PermissionDenied("reports cover the whole agency; collectors may not read them")


def require_import_reader(actor: Actor) -> None:
    """Import runs and their row errors cover everything a file placed with the agency, as
    the imports report does: agency admins and read-only users read them; collectors may
    not."""
    if actor.role is Role.COLLECTOR:
        raise PermissionDenied("imports cover the whole agency; collectors may not read them")


def require_export_user(actor: Actor) -> None:
    """Exports hold reports: their readers (agency admins and read-only users) request and
    read them; collectors may not."""
    if actor.role is Role.COLLECTOR:
        raise PermissionDenied("exports hold agency-wide reports; collectors may not use them")


def in_agency(actor: Actor, obj: T | None, entity: str, id_: UUID) -> T:
    """Return ``obj`` if it exists in the actor's agency, else raise NotFound."""
    if obj is None or obj.agency_id != actor.agency_id:
        raise NotFound.of(entity, id_)
    return obj


def can_reach_account(actor: Actor, account: Account) -> bool:
    if account.agency_id != actor.agency_id:
        return False
    return actor.role is not Role.COLLECTOR or account.assigned_collector_id == actor.user_id


def reachable_account(actor: Actor, account: Account | None, id_: UUID) -> Account:
    """Return ``account`` if the actor may see it, else raise NotFound."""
    if account is None or not can_reach_account(actor, account):
        raise NotFound.of("account", id_)
    return account


def may_replay_unread(actor: Actor, made_by: UUID | None) -> bool:
    """Whether an answer stored under an idempotency key may be replayed before the object
    it names is read: to an agency admin, who reaches all of the agency, or to the user who
    made the request (``made_by``). Anyone else is checked on the object first, as a new
    request would be, so a key and a body do not open what the actor could not reach."""
    return actor.role is Role.AGENCY_ADMIN or (made_by is not None and made_by == actor.user_id)


def collector_scope(actor: Actor) -> UUID | None:
    """The collector whose accounts bound every list the actor sees (``None``: the agency)."""
    return actor.user_id if actor.role is Role.COLLECTOR else None
