from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.money import validate_amount, validate_balance, validate_currency
from debtflow_core.errors import Conflict, ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import collector_scope, reachable_account, require_admin
from debtflow_core.ports.accounts import AccountPosition, AccountQuery, AccountSort
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.validation import optional_text, require_text


class NewAccount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    debtor_id: UUID
    external_id: str
    original_creditor: str
    currency: str
    placed_balance: int
    charge_off_date: date | None = None


class AccountFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of accounts may be narrowed by; see :class:`AccountQuery`."""

    status: AccountStatus | None = None
    collector_id: UUID | None = None
    unassigned: bool = False
    min_balance: int | None = None
    max_balance: int | None = None
    text: str | None = None
    sort: AccountSort = AccountSort.NEWEST


def _position(sort: AccountSort, account: Account) -> AccountPosition:
    if sort is AccountSort.NEWEST:
        return AccountPosition(sort=sort, id=account.id, placed_at=account.placed_at)
    return AccountPosition(sort=sort, id=account.id, balance=account.current_balance)


async def move_account(
    uow: UnitOfWork, actor: Actor, account: Account, status: AccountStatus, at: datetime
) -> None:
    """Move ``account`` to ``status`` as a consequence of something else (a dispute, a
    payment, a hold given back), inside the caller's unit of work: the transition checked,
    saved and audited as ``account.status_changed``. Read ``account`` under its lock (or
    after a balance update that holds it), so that no change committed meanwhile is
    written over."""
    moved = account.transition_to(status, at=at)
    await uow.accounts.update(moved)
    await uow.audit_log.add(
        audit_entry(
            actor,
            "account.status_changed",
            entity_id=account.id,
            before=account,
            after=moved,
            at=at,
        )
    )


class _AccountUseCase:
    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def _save(self, actor: Actor, action: str, before: Account, after: Account) -> None:
        """Save ``after``, audit the change from ``before`` and commit. ``before`` was read
        with ``accounts.lock`` in this unit of work: read with ``get``, a change committed
        meanwhile (a payment marking the account paid in full, another admin's) would be
        written over, and the change judged and audited from a status no longer there."""
        await self._uow.accounts.update(after)
        await self._uow.audit_log.add(
            audit_entry(
                actor, action, entity_id=after.id, before=before, after=after, at=after.updated_at
            )
        )
        await self._uow.commit()

    async def _refuse_all_but_admins(self, actor: Actor, account_id: UUID) -> None:
        """Refuse, before any lock is taken, an actor who may not change the account: a
        refused caller makes no change wait. Reach is judged first, as everywhere (out of
        reach is NotFound whatever the role), on the account as committed; the change then
        reads it again under its lock."""
        reachable_account(actor, await self._uow.accounts.get(account_id), account_id)
        require_admin(actor)


class PlaceAccount(_AccountUseCase):
    """Place a new account with the agency for one of its debtors. Agency admins only.

    The external account id is unique within the agency; the placed balance is a whole,
    non-negative number of minor units and becomes the current balance.
    """

    async def execute(self, actor: Actor, command: NewAccount) -> Account:
        require_admin(actor)
        now = self._clock.now()
        account = Account(
            id=new_id(),
            agency_id=actor.agency_id,
            debtor_id=command.debtor_id,
            external_id=require_text(command.external_id, field="external_id", max_length=100),
            original_creditor=require_text(command.original_creditor, field="original_creditor"),
            currency=validate_currency(command.currency),
            placed_balance=validate_amount(command.placed_balance, field="placed_balance"),
            current_balance=command.placed_balance,
            charge_off_date=command.charge_off_date,
            status=AccountStatus.ACTIVE,
            assigned_collector_id=None,
            placed_at=now,
            updated_at=now,
        )
        async with self._uow as uow:
            debtor = await uow.debtors.get(command.debtor_id)
            if debtor is None or debtor.agency_id != actor.agency_id:
                raise ValidationFailed("no such debtor in this agency", field="debtor_id")
            if await uow.accounts.get_by_external_id(actor.agency_id, account.external_id):
                raise Conflict(f"an account with the external id {account.external_id!r} exists")
            await uow.accounts.add(account)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "account.placed",
                    entity_id=account.id,
                    before=None,
                    after=account,
                    at=now,
                )
            )
            await uow.commit()
        return account


class GetAccount:
    """One account. Collectors reach only the accounts assigned to them."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor, account_id: UUID) -> Account:
        async with self._uow as uow:
            return reachable_account(actor, await uow.accounts.get(account_id), account_id)


def _sort_key(position: AccountPosition) -> object:
    """The value a page ended on in its order (``None`` if the cursor lacks it)."""
    return position.placed_at if position.sort is AccountSort.NEWEST else position.balance


class ListAccounts:
    """Accounts of the actor's agency, filtered, one page at a time (keyset pagination).

    Collectors see only their assigned accounts, whatever the filters say. The cursor is a
    position in the order (``newest``: placement time; ``balance_desc``, ``balance_asc``:
    the current balance), not a snapshot: an account whose balance a payment changes while
    a client pages by balance moves within the order, and may then be met twice or not
    at all. Paging by ``newest`` meets every account placed before the first page once.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self,
        actor: Actor,
        filters: AccountFilters = AccountFilters(),
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Account]:
        limit = validate_limit(limit)
        after = decode_cursor(cursor, AccountPosition) if cursor else None
        if after is not None and after.sort is not filters.sort:
            raise ValidationFailed("the cursor belongs to another sort order", field="cursor")
        if after is not None and _sort_key(after) is None:
            raise ValidationFailed("the cursor names no position in its order", field="cursor")
        for field in ("min_balance", "max_balance"):
            if (bound := getattr(filters, field)) is not None:
                validate_balance(bound, field=field)
        scope = collector_scope(actor)
        if scope is not None:
            if filters.unassigned or filters.collector_id not in (None, scope):
                return Page(items=[], next_cursor=None)
            filters = msgspec.structs.replace(filters, collector_id=scope)
        query = AccountQuery(
            agency_id=actor.agency_id,
            status=filters.status,
            collector_id=filters.collector_id,
            unassigned=filters.unassigned,
            min_balance=filters.min_balance,
            max_balance=filters.max_balance,
            text=optional_text(filters.text, field="text", max_length=200),
            sort=filters.sort,
            after=after,
            limit=limit + 1,
        )
        async with self._uow as uow:
            rows = await uow.accounts.list(query)
        return paginate(rows, limit, lambda a: _position(filters.sort, a))


class AssignCollector(_AccountUseCase):
    """Assign an account to a collector of the agency. Agency admins only.

    The assignee must be an active user with the collector role. Assignments take turns
    with changes to the agency's users, so none lands on a collector being deactivated or
    given another role (whose accounts that change unassigns).
    """

    async def execute(self, actor: Actor, account_id: UUID, collector_id: UUID) -> Account:
        async with self._uow as uow:
            await self._refuse_all_but_admins(actor, account_id)
            await uow.agencies.lock(actor.agency_id)  # first, as changes to users take it
            before = reachable_account(actor, await uow.accounts.lock(account_id), account_id)
            collector = await uow.users.get(collector_id)
            if (
                collector is None
                or collector.agency_id != actor.agency_id
                or not collector.assignable
            ):
                raise ValidationFailed(
                    "no active collector with this id in the agency", field="collector_id"
                )
            if before.assigned_collector_id == collector_id:
                return before
            after = msgspec.structs.replace(
                before, assigned_collector_id=collector_id, updated_at=self._clock.now()
            )
            await self._save(actor, "account.assigned", before, after)
        return after


class UnassignCollector(_AccountUseCase):
    """Take an account away from its collector. Agency admins only."""

    async def execute(self, actor: Actor, account_id: UUID) -> Account:
        async with self._uow as uow:
            await self._refuse_all_but_admins(actor, account_id)
            before = reachable_account(actor, await uow.accounts.lock(account_id), account_id)
            if before.assigned_collector_id is None:
                return before
            after = msgspec.structs.replace(
                before, assigned_collector_id=None, updated_at=self._clock.now()
            )
            await self._save(actor, "account.unassigned", before, after)
        return after


class ChangeAccountStatus(_AccountUseCase):
    """Move an account along its lifecycle. Agency admins only.

    Allowed moves are in :data:`debtflow_core.domain.account.ALLOWED_TRANSITIONS`; a
    forbidden one is a Conflict and changes nothing. Asking for the status the account
    has already changes nothing either, so a client may resend a change it got no answer
    to.
    """

    async def execute(self, actor: Actor, account_id: UUID, status: AccountStatus) -> Account:
        async with self._uow as uow:
            await self._refuse_all_but_admins(actor, account_id)
            before = reachable_account(actor, await uow.accounts.lock(account_id), account_id)
            if before.status is status:
                return before
            after = before.transition_to(status, at=self._clock.now())
            await self._save(actor, "account.status_changed", before, after)
        return after
