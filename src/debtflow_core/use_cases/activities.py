from __future__ import annotations

from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.account import COLLECTING, AccountStatus
from debtflow_core.domain.activity import (
    CALLING_HOURS,
    CONTACT_FLAGS,
    OUTBOUND_CONTACT,
    TIMED_CONTACT,
    Activity,
    ActivityType,
    PromiseToPay,
)
from debtflow_core.domain.debtor import Debtor
from debtflow_core.domain.money import validate_amount
from debtflow_core.errors import Conflict, ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import reachable_account, require_writer
from debtflow_core.ports.activities import ActivityPosition, ActivityQuery
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.accounts import move_account
from debtflow_core.validation import optional_text


class NewActivity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: ActivityType
    outcome: str | None = None
    note: str | None = None
    promise: PromiseToPay | None = None


def _contact_refusal(kind: ActivityType, debtor: Debtor, now: datetime) -> str | None:
    """Why ``debtor`` may not be reached by ``kind`` at ``now``, if they may not."""
    preferences = debtor.contact_preferences
    if preferences.cease_communication:
        return "the debtor asked us to cease communication"
    flag = CONTACT_FLAGS[kind]
    if getattr(preferences, flag):
        return f"the debtor is marked {flag}: no {kind} may be recorded"
    zone = None if debtor.address is None else debtor.address.time_zone
    if kind in TIMED_CONTACT and zone is not None:
        local = now.astimezone(ZoneInfo(zone))
        start, end = CALLING_HOURS
        if not start <= local.time() < end:
            return (
                f"it is {local:%H:%M} for the debtor ({zone}): calls and texts may reach "
                f"them from {start:%H:%M} to {end:%H:%M} their time"
            )
    return None


# The activities whose rules read the account's status.
STATUS_BOUND = OUTBOUND_CONTACT | {ActivityType.PROMISE_TO_PAY, ActivityType.DISPUTE}


def _status_refusal(kind: ActivityType, status: AccountStatus) -> str | None:
    """Why ``kind`` may not be recorded on an account in ``status``, if it may not."""
    if status is AccountStatus.RECALLED and kind in OUTBOUND_CONTACT:
        return "the account was recalled by its creditor: the agency may no longer contact"
    if kind is ActivityType.PROMISE_TO_PAY and status not in COLLECTING:
        return f"the account is {status}: there is nothing left to promise"
    return None


class RecordActivity:
    """Record what happened on an account. Agency admins, and collectors on their accounts.

    - A promise to pay carries its amount and due date; other types carry none. It falls
      due from today to a year ahead (:meth:`PromiseToPay.due_date_refusal`), and is
      taken only on an account still being collected (active or disputed).
    - A recalled account went back to its creditor: no call, email, letter or SMS may be
      recorded on it (notes, disputes and cease requests still may).
    - A dispute moves an active account to ``disputed``.
    - A cease-communication request sets the debtor's ``cease_communication`` flag; from then
      on no call, email, letter or SMS may be recorded for that debtor (notes still may).
    - Each channel's own flag forbids it alone: ``do_not_call`` a call, ``do_not_text`` an
      SMS, ``do_not_email`` an email, ``do_not_mail`` a letter.
    - A call or an SMS is refused outside :data:`CALLING_HOURS` in the debtor's time zone
      (their address's, which only an agency admin changes or removes); with no time zone
      known, the hours cannot be checked.

    A refused contact is a Conflict and records nothing: tools ask before they reach out.
    """

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, actor: Actor, account_id: UUID, command: NewActivity) -> Activity:
        kind = ActivityType(command.type)
        if (kind is ActivityType.PROMISE_TO_PAY) != (command.promise is not None):
            raise ValidationFailed(
                "a promise is given with, and only with, a promise_to_pay", field="promise"
            )
        now = self._clock.now()
        if command.promise is not None:
            validate_amount(command.promise.amount, field="promise.amount", allow_zero=False)
            if refusal := command.promise.due_date_refusal(now):
                raise ValidationFailed(refusal, field="promise.due_on")
        activity = Activity(
            id=new_id(),
            agency_id=actor.agency_id,
            account_id=account_id,
            type=kind,
            outcome=optional_text(command.outcome, field="outcome", max_length=100),
            note=optional_text(command.note, field="note"),
            promise=command.promise,
            actor_id=actor.user_id,
            occurred_at=now,
        )
        async with self._uow as uow:
            account = reachable_account(actor, await uow.accounts.get(account_id), account_id)
            require_writer(actor)
            # Locked, so that edits and cease-communication requests on one debtor take
            # turns: a contact recorded after a request sees it.
            debtor = await uow.debtors.lock(account.debtor_id)
            assert debtor is not None  # an account's debtor is a foreign key
            if kind in STATUS_BOUND:
                # Read again under its lock, taken after the debtor's as the placement merge
                # takes them: the activity is judged by the status the account has now (a
                # recall or a final payment committed meanwhile counts), and a dispute moves
                # it from there without writing over a concurrent change.
                account = reachable_account(actor, await uow.accounts.lock(account_id), account_id)
            if refusal := _status_refusal(kind, account.status):
                raise Conflict(refusal)
            if kind in OUTBOUND_CONTACT and (refusal := _contact_refusal(kind, debtor, now)):
                raise Conflict(refusal)
            await uow.activities.add(activity)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "activity.recorded",
                    entity_id=activity.id,
                    before=None,
                    after=activity,
                    at=now,
                )
            )
            if kind is ActivityType.DISPUTE and account.status is AccountStatus.ACTIVE:
                await move_account(uow, actor, account, AccountStatus.DISPUTED, now)
            if (
                kind is ActivityType.CEASE_COMMUNICATION
                and not debtor.contact_preferences.cease_communication
            ):
                ceased = msgspec.structs.replace(
                    debtor,
                    contact_preferences=msgspec.structs.replace(
                        debtor.contact_preferences, cease_communication=True
                    ),
                    updated_at=now,
                )
                await uow.debtors.update(ceased)
                await uow.audit_log.add(
                    audit_entry(
                        actor,
                        "debtor.updated",
                        entity_id=debtor.id,
                        before=debtor,
                        after=ceased,
                        at=now,
                    )
                )
            await uow.commit()
        return activity


class ListActivities:
    """An account's activities, newest first. Anyone who can see the account."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, actor: Actor, account_id: UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Activity]:
        limit = validate_limit(limit)
        query = ActivityQuery(
            account_id=account_id,
            after=decode_cursor(cursor, ActivityPosition) if cursor else None,
            limit=limit + 1,
        )
        async with self._uow as uow:
            reachable_account(actor, await uow.accounts.get(account_id), account_id)
            rows = await uow.activities.list(query)
        return paginate(rows, limit, lambda a: ActivityPosition(a.occurred_at, a.id))
