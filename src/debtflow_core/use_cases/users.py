from __future__ import annotations

import asyncio
from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.user import EMAIL_TAKEN, Role, User, normalize_email, parse_role
from debtflow_core.errors import Conflict, PermissionDenied, ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import in_agency, require_admin
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.ports.users import UserPosition, UserQuery
from debtflow_core.validation import require_text

MIN_PASSWORD_LENGTH = 10


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"a password has at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > 1024:
        raise ValidationFailed("a password has at most 1024 characters", field="password")
    return password


class NewUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: str
    full_name: str
    role: Role
    password: str


class CreateUser:
    """Add a user to the actor's agency. Agency admins only.

    Emails are unique across the platform (users sign in with them): a taken one is a
    Conflict that says the same whichever agency holds it, and does not repeat the email.
    Passwords have at least ten characters and are stored only as a salted hash.
    """

    def __init__(self, uow: UnitOfWork, clock: Clock, hasher: PasswordHasher) -> None:
        self._uow = uow
        self._clock = clock
        self._hasher = hasher

    async def execute(self, actor: Actor, command: NewUser) -> User:
        require_admin(actor)
        user = User(
            id=new_id(),
            agency_id=actor.agency_id,
            email=normalize_email(command.email),
            full_name=require_text(command.full_name, field="full_name"),
            role=parse_role(command.role),
            password_hash=await asyncio.to_thread(
                self._hasher.hash, _check_password(command.password)
            ),
            active=True,
            created_at=self._clock.now(),
        )
        async with self._uow as uow:
            if await uow.users.get_by_email(user.email) is not None:
                raise Conflict(EMAIL_TAKEN)
            await uow.users.add(user)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "user.created",
                    entity_id=user.id,
                    before=None,
                    after=user,
                    at=user.created_at,
                )
            )
            await uow.commit()
        return user


class ListUsers:
    """The users of the actor's agency by email, a page at a time; only those with ``role``,
    or only the active (``active=true``) or deactivated (``active=false``) ones, when asked.
    Agency admins only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self,
        actor: Actor,
        *,
        role: Role | None = None,
        active: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[User]:
        require_admin(actor)
        limit = validate_limit(limit)
        query = UserQuery(
            agency_id=actor.agency_id,
            role=None if role is None else parse_role(role),
            active=active,
            after=decode_cursor(cursor, UserPosition) if cursor else None,
            limit=limit + 1,
        )
        async with self._uow as uow:
            rows = await uow.users.list(query)
        return paginate(rows, limit, lambda user: UserPosition(user.email))


class GetUser:
    """One user of the actor's agency. Agency admins see anyone; others only themselves."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor, user_id: UUID) -> User:
        async with self._uow as uow:
            user = in_agency(actor, await uow.users.get(user_id), "user", user_id)
        if user_id != actor.user_id:
            require_admin(actor)
        return user


class _ChangeUser:
    """A change to another user of the actor's agency, by an admin who still is one.

    Changes to an agency's users take turns on the agency's lock, and each reads under it
    both the user it changes and the acting admin. So no change writes back a role or an
    active flag that another one just saved (a role change that waited for a deactivation
    leaves the user deactivated), and an admin demoted or deactivated meanwhile is refused
    although they signed in as one. With admins never changing themselves, this keeps an
    active admin in every agency: a change to an admin is made by another admin, who is
    still one when the change is saved (of two admins demoting each other at once, the
    second is refused).
    """

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def _change(self, actor: Actor, user_id: UUID, action: str, **changes: object) -> User:
        async with self._uow as uow:
            await uow.agencies.lock(actor.agency_id)
            before = in_agency(actor, await uow.users.get(user_id), "user", user_id)
            require_admin(actor)
            if actor.user_id is not None:  # the platform is no user: nobody demotes it
                _require_still_admin(await uow.users.get(actor.user_id))
            if user_id == actor.user_id:
                raise Conflict("admins cannot change their own role or deactivate themselves")
            after = msgspec.structs.replace(before, **changes)
            if after == before:
                return before
            now = self._clock.now()
            await uow.users.update(after)
            await uow.audit_log.add(
                audit_entry(actor, action, entity_id=user_id, before=before, after=after, at=now)
            )
            if before.assignable and not after.assignable:
                await _release_accounts(uow, actor, user_id, now)
            await uow.commit()
        return after


async def _release_accounts(
    uow: UnitOfWork, actor: Actor, collector_id: UUID, at: datetime
) -> None:
    """Unassign the accounts of a collector who can no longer work them, each audited as
    an unassignment: left assigned, they would be neither theirs nor in the unassigned
    queue."""
    for account in await uow.accounts.release_collector(actor.agency_id, collector_id, at=at):
        held = msgspec.structs.replace(account, assigned_collector_id=collector_id)
        await uow.audit_log.add(
            audit_entry(
                actor, "account.unassigned", entity_id=account.id, before=held, after=account, at=at
            )
        )


def _require_still_admin(acting: User | None) -> None:
    """The acting user as stored now, not as when they signed in, must be an active admin."""
    if acting is None or not acting.active or acting.role is not Role.AGENCY_ADMIN:
        raise PermissionDenied("only an active agency admin may do this")


class ChangeUserRole(_ChangeUser):
    """Give a user of the agency another role. Agency admins only, never on themselves.

    An admin demoted or deactivated since they signed in is refused, and changes to one
    agency's users take turns, so an agency always keeps an active admin. A collector
    given another role gives up their accounts: each is unassigned, and audited so.
    """

    async def execute(self, actor: Actor, user_id: UUID, role: Role) -> User:
        return await self._change(actor, user_id, "user.role_changed", role=parse_role(role))


class DeactivateUser(_ChangeUser):
    """Stop a user from signing in. Agency admins only, never on themselves.

    An admin demoted or deactivated since they signed in is refused, and changes to one
    agency's users take turns, so an agency always keeps an active admin. The user, and
    everything they did, stays for the audit trail. A deactivated collector's accounts
    are unassigned, each audited so, and wait in the unassigned queue.
    """

    async def execute(self, actor: Actor, user_id: UUID) -> User:
        return await self._change(actor, user_id, "user.deactivated", active=False)
