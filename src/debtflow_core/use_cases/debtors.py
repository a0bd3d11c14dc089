from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.contact_data import (
    MAX_CONTACTS,
    at_most_max_contacts,
    birth_date,
    email_address,
    phone_number,
    postal_address,
)
from debtflow_core.domain.debtor import ContactPreferences, Debtor, Phone, PostalAddress
from debtflow_core.domain.user import Role
from debtflow_core.errors import NotFound, PermissionDenied, ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import collector_scope, in_agency, require_admin, require_writer
from debtflow_core.ports.accounts import AccountQuery
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.debtors import DebtorPosition, DebtorQuery
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.validation import optional_text, require_text

Phones = Annotated[tuple[Phone, ...], Meta(max_length=MAX_CONTACTS)]
Emails = Annotated[tuple[str, ...], Meta(max_length=MAX_CONTACTS)]


class NewDebtor(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    first_name: str
    last_name: str
    external_id: str | None = None
    date_of_birth: date | None = None
    phones: Phones = ()
    emails: Emails = ()
    address: PostalAddress | None = None
    contact_preferences: ContactPreferences = ContactPreferences()


class ContactPreferenceChanges(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """The do-not-contact flags to change: a flag left out keeps its stored value.

    ``cease_communication`` may only be sent with its stored value: it is set by recording
    a ``cease_communication`` activity and no edit lifts it.
    """

    do_not_call: bool | UnsetType = UNSET
    do_not_email: bool | UnsetType = UNSET
    do_not_text: bool | UnsetType = UNSET
    do_not_mail: bool | UnsetType = UNSET
    cease_communication: bool | UnsetType = UNSET


class DebtorChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A partial update: only the fields that are set change (within
    ``contact_preferences``, only the flags that are set)."""

    first_name: str | UnsetType = UNSET
    last_name: str | UnsetType = UNSET
    date_of_birth: date | UnsetType | None = UNSET
    phones: Phones | UnsetType = UNSET
    emails: Emails | UnsetType = UNSET
    address: PostalAddress | UnsetType | None = UNSET
    contact_preferences: ContactPreferenceChanges | UnsetType = UNSET


def _set_fields(changes: msgspec.Struct) -> dict[str, object]:
    return {
        name: value
        for name in changes.__struct_fields__
        if (value := getattr(changes, name)) is not UNSET
    }


def _preferences(
    stored: ContactPreferences, changes: ContactPreferenceChanges
) -> ContactPreferences:
    """``stored`` with the flags ``changes`` sets. A debtor's request to cease communication
    is recorded as an activity on their account (who took it, when, what it said, counted
    in the reports); an edit can neither lift it nor set it without that record."""
    flags = _set_fields(changes)
    ceased = flags.get("cease_communication", stored.cease_communication)
    if ceased != stored.cease_communication:
        detail = (
            "cannot be lifted by an edit: the debtor asked us to cease communication"
            if stored.cease_communication
            else "is set by recording a cease_communication activity on the debtor's account"
        )
        raise ValidationFailed(detail, field="contact_preferences.cease_communication")
    return msgspec.structs.replace(stored, **flags)


def _emails(emails: tuple[str, ...]) -> tuple[str, ...]:
    at_most_max_contacts(emails, field="emails")
    return tuple(
        dict.fromkeys(email_address(email, field=f"emails[{i}]") for i, email in enumerate(emails))
    )


def _phones(phones: tuple[Phone, ...]) -> tuple[Phone, ...]:
    at_most_max_contacts(phones, field="phones")
    return tuple(
        dict.fromkeys(
            msgspec.structs.replace(
                phone, number=phone_number(phone.number, field=f"phones[{i}].number")
            )
            for i, phone in enumerate(phones)
        )
    )


_IDENTITY = ("first_name", "last_name", "date_of_birth")
_DO_NOT_CONTACT = ("do_not_call", "do_not_email", "do_not_text", "do_not_mail")


def _within_a_collectors_reach(before: Debtor, after: Debtor) -> None:
    """Refuse a collector's edit of who the debtor is, of the time zone their calling hours
    are judged in, or one lifting a do-not-contact flag (see :class:`UpdateDebtor`); a value
    sent unchanged is no edit."""
    for name in _IDENTITY:
        if getattr(after, name) != getattr(before, name):
            raise PermissionDenied(f"only an agency admin may change a debtor's {name}")
    if before.address is not None:
        if after.address is None:
            raise PermissionDenied("only an agency admin may remove a debtor's address")
        zone = before.address.time_zone
        if zone is not None and after.address.time_zone != zone:
            raise PermissionDenied("only an agency admin may change a debtor's address.time_zone")
    for flag in _DO_NOT_CONTACT:
        if getattr(before.contact_preferences, flag) and not getattr(
            after.contact_preferences, flag
        ):
            raise PermissionDenied(f"only an agency admin may lift {flag}")


def _address(address: PostalAddress | None) -> PostalAddress | None:
    return None if address is None else postal_address(address, field="address")


def _born(born: date | None, today: date) -> date | None:
    return None if born is None else birth_date(born, today=today, field="date_of_birth")


async def _reachable_debtor(
    uow: UnitOfWork, actor: Actor, found: Debtor | None, debtor_id: UUID
) -> Debtor:
    """``found`` if the actor may see it: any debtor in the agency, or for a collector only
    the debtors of accounts assigned to them."""
    debtor = in_agency(actor, found, "debtor", debtor_id)
    collector_id = collector_scope(actor)
    if collector_id is not None and not await uow.accounts.list(
        AccountQuery(
            agency_id=actor.agency_id, debtor_id=debtor_id, collector_id=collector_id, limit=1
        )
    ):
        raise NotFound.of("debtor", debtor_id)
    return debtor


class CreateDebtor:
    """Record a debtor in the actor's agency. Agency admins only (placement is theirs).

    An external id, when given, is unique within the agency. Phones, emails and the
    address follow the rules placement files follow (a US address has a US state and ZIP
    code), the time zone is an IANA name, and the date of birth is neither in the future
    nor before 1900; a value breaking one is refused (422) naming it (``phones[0].number``).
    """

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, actor: Actor, command: NewDebtor) -> Debtor:
        require_admin(actor)
        now = self._clock.now()
        debtor = Debtor(
            id=new_id(),
            agency_id=actor.agency_id,
            external_id=optional_text(command.external_id, field="external_id", max_length=100),
            first_name=require_text(command.first_name, field="first_name"),
            last_name=require_text(command.last_name, field="last_name"),
            date_of_birth=_born(command.date_of_birth, now.date()),
            phones=_phones(command.phones),
            emails=_emails(command.emails),
            address=_address(command.address),
            contact_preferences=command.contact_preferences,
            created_at=now,
            updated_at=now,
        )
        async with self._uow as uow:
            await uow.debtors.add(debtor)
            await uow.audit_log.add(
                audit_entry(
                    actor, "debtor.created", entity_id=debtor.id, before=None, after=debtor, at=now
                )
            )
            await uow.commit()
        return debtor


class GetDebtor:
    """One debtor. Collectors see only the debtors of accounts assigned to them."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor, debtor_id: UUID) -> Debtor:
        async with self._uow as uow:
            return await _reachable_debtor(uow, actor, await uow.debtors.get(debtor_id), debtor_id)


class UpdateDebtor:
    """Correct a debtor's name, birth date, contact points or contact preferences.

    Agency admins, and collectors for the debtors of their assigned accounts. Only the
    fields sent change, checked as when a debtor is created; in ``contact_preferences``,
    only the flags sent. The
    ``cease_communication`` flag is set by recording a ``cease_communication`` activity and
    is never lifted by an edit: sending it with another value than the stored one is
    refused (422).

    A collector corrects how the debtor is reached (phones, emails, address) and may stop
    a channel (set a do-not-contact flag the debtor asked for on the phone); who the
    debtor is (names, birth date), lifting a do-not-contact flag, removing the address and
    changing or removing its time zone (which decides the calling hours; a collector may
    give one where none is known) are for agency admins (PermissionDenied), so that
    neither a request not to be called nor the calling hours can be undone by whoever works
    the account.
    """

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, actor: Actor, debtor_id: UUID, changes: DebtorChanges) -> Debtor:
        now = self._clock.now()
        updates = _set_fields(changes)
        for name in ("first_name", "last_name"):
            if name in updates:
                updates[name] = require_text(updates[name], field=name)  # type: ignore[arg-type]
        if "emails" in updates:
            updates["emails"] = _emails(updates["emails"])  # type: ignore[arg-type]
        if "phones" in updates:
            updates["phones"] = _phones(updates["phones"])  # type: ignore[arg-type]
        if "address" in updates:
            updates["address"] = _address(updates["address"])  # type: ignore[arg-type]
        if not isinstance(changes.date_of_birth, UnsetType):
            updates["date_of_birth"] = _born(changes.date_of_birth, now.date())
        async with self._uow as uow:
            # Locked: a cease-communication request committed meanwhile is not overwritten.
            locked = await uow.debtors.lock(debtor_id)
            before = await _reachable_debtor(uow, actor, locked, debtor_id)
            require_writer(actor)
            if isinstance(changes.contact_preferences, ContactPreferenceChanges):
                updates["contact_preferences"] = _preferences(
                    before.contact_preferences, changes.contact_preferences
                )
            after = msgspec.structs.replace(before, **updates, updated_at=now)
            if actor.role is Role.COLLECTOR:
                _within_a_collectors_reach(before, after)
            if msgspec.structs.replace(after, updated_at=before.updated_at) == before:
                return before
            await uow.debtors.update(after)
            await uow.audit_log.add(
                audit_entry(
                    actor, "debtor.updated", entity_id=debtor_id, before=before, after=after, at=now
                )
            )
            await uow.commit()
        return after


class SearchDebtors:
    """Debtors of the actor's agency, newest first, optionally matching ``text`` in the name
    or external id. Collectors get only the debtors of accounts assigned to them."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, actor: Actor, *, text: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Debtor]:
        limit = validate_limit(limit)
        query = DebtorQuery(
            agency_id=actor.agency_id,
            text=optional_text(text, field="text", max_length=200),
            collector_id=collector_scope(actor),
            after=decode_cursor(cursor, DebtorPosition) if cursor else None,
            limit=limit + 1,
        )
        async with self._uow as uow:
            rows = await uow.debtors.search(query)
        return paginate(rows, limit, lambda d: DebtorPosition(d.created_at, d.id))
