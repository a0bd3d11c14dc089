from __future__ import annotations

from datetime import date, timedelta

import msgspec
import pytest

from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.activity import ActivityType, PromiseToPay
from debtflow_core.domain.debtor import PostalAddress
from debtflow_core.errors import Conflict, PermissionDenied, ValidationFailed
from debtflow_core.use_cases.accounts import ChangeAccountStatus, GetAccount
from debtflow_core.use_cases.activities import ListActivities, NewActivity, RecordActivity
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_core.use_cases.debtors import (
    ContactPreferenceChanges,
    DebtorChanges,
    GetDebtor,
    UpdateDebtor,
)


@pytest.fixture
async def setup(world):
    alpha = await world.agency("alpha")
    account = await world.account(alpha.admin, external_id="A-1", collector=alpha.collector)
    return world, alpha, account


async def test_a_dispute_moves_the_account_to_disputed(setup):
    world, alpha, account = setup
    await world.use(RecordActivity).execute(
        alpha.collector, account.id, NewActivity(type=ActivityType.DISPUTE, note="not mine")
    )
    account = await world.use(GetAccount).execute(alpha.admin, account.id)
    assert account.status is AccountStatus.DISPUTED


async def test_cease_communication_flags_the_debtor_and_stops_outbound_contact(setup):
    world, alpha, account = setup
    record = world.use(RecordActivity)
    await record.execute(alpha.collector, account.id, NewActivity(type=ActivityType.CALL))
    await record.execute(
        alpha.collector, account.id, NewActivity(type=ActivityType.CEASE_COMMUNICATION)
    )
    debtor = await world.use(GetDebtor).execute(alpha.admin, account.debtor_id)
    assert debtor.contact_preferences.cease_communication

    for kind in (ActivityType.CALL, ActivityType.EMAIL, ActivityType.LETTER, ActivityType.SMS):
        with pytest.raises(Conflict, match="cease communication"):
            await record.execute(alpha.collector, account.id, NewActivity(type=kind))
    await record.execute(alpha.collector, account.id, NewActivity(type=ActivityType.NOTE))
    kinds = [
        a.type for a in (await world.use(ListActivities).execute(alpha.admin, account.id)).items
    ]
    assert kinds == [ActivityType.NOTE, ActivityType.CEASE_COMMUNICATION, ActivityType.CALL]


async def test_a_second_cease_communication_request_is_recorded_but_changes_no_debtor(setup):
    world, alpha, account = setup
    record = world.use(RecordActivity)
    for _ in range(2):
        await record.execute(
            alpha.collector, account.id, NewActivity(type=ActivityType.CEASE_COMMUNICATION)
        )
    entries = await world.use(QueryAuditLog).execute(
        alpha.admin, AuditFilters(entity_type="debtor", entity_id=account.debtor_id)
    )
    assert [e.action for e in entries.items] == ["debtor.updated", "debtor.created"]
    activities = await world.use(ListActivities).execute(alpha.admin, account.id)
    assert len(activities.items) == 2


async def test_an_edit_of_contact_preferences_never_lifts_cease_communication(setup):
    world, alpha, account = setup
    await world.use(RecordActivity).execute(
        alpha.collector, account.id, NewActivity(type=ActivityType.CEASE_COMMUNICATION)
    )
    update = world.use(UpdateDebtor)
    for actor, flags in [
        (alpha.admin, ContactPreferenceChanges(do_not_call=True)),
        (alpha.admin, ContactPreferenceChanges(do_not_call=False)),
        (alpha.collector, ContactPreferenceChanges(cease_communication=True)),
    ]:
        debtor = await update.execute(
            actor, account.debtor_id, DebtorChanges(contact_preferences=flags)
        )
        assert debtor.contact_preferences.cease_communication
    await update.execute(alpha.admin, account.debtor_id, DebtorChanges(last_name="King"))
    with pytest.raises(ValidationFailed, match="cannot be lifted") as refused:
        await update.execute(
            alpha.admin,
            account.debtor_id,
            DebtorChanges(
                last_name="Byron",
                contact_preferences=ContactPreferenceChanges(
                    do_not_mail=True, cease_communication=False
                ),
            ),
        )
    assert refused.value.field == "contact_preferences.cease_communication"
    debtor = await world.use(GetDebtor).execute(alpha.admin, account.debtor_id)
    assert (debtor.last_name, debtor.contact_preferences.cease_communication) == ("King", True)
    assert not debtor.contact_preferences.do_not_mail  # the refused edit changed nothing


async def test_a_collector_corrects_contact_points_and_stops_channels_but_no_more(setup):
    world, alpha, account = setup
    update = world.use(UpdateDebtor)
    stop_calls = ContactPreferenceChanges(do_not_call=True)
    debtor = await update.execute(
        alpha.collector,
        account.debtor_id,
        # The name sent as it is stored is no change: a client may send the whole debtor.
        DebtorChanges(
            last_name="Lovelace", emails=("ada@example.com",), contact_preferences=stop_calls
        ),
    )
    assert (debtor.emails, debtor.contact_preferences.do_not_call) == (("ada@example.com",), True)
    for changes, refused in [
        (DebtorChanges(last_name="Byron"), "change a debtor's last_name"),
        (DebtorChanges(date_of_birth=date(1990, 1, 1)), "change a debtor's date_of_birth"),
        (
            DebtorChanges(contact_preferences=ContactPreferenceChanges(do_not_call=False)),
            "lift do_not_call",
        ),
    ]:
        with pytest.raises(PermissionDenied, match=refused):
            await update.execute(alpha.collector, account.debtor_id, changes)
    assert await world.use(GetDebtor).execute(alpha.admin, account.debtor_id) == debtor
    lifted = await update.execute(
        alpha.admin,
        account.debtor_id,
        DebtorChanges(contact_preferences=ContactPreferenceChanges(do_not_call=False)),
    )
    assert not lifted.contact_preferences.do_not_call


async def test_a_collector_cannot_move_the_calling_hours(setup):
    world, alpha, account = setup  # the clock: 09:00 UTC, 04:00 in Chicago
    update = world.use(UpdateDebtor)
    home = PostalAddress(line1="1 Main St", city="Austin", state="TX", postal_code="78701")
    chicago = msgspec.structs.replace(home, time_zone="America/Chicago")
    # A zone where none was known makes the hours checked: a collector may give it.
    await update.execute(alpha.collector, account.debtor_id, DebtorChanges(address=home))
    await update.execute(alpha.collector, account.debtor_id, DebtorChanges(address=chicago))
    for address, refused in [
        (msgspec.structs.replace(chicago, time_zone="Asia/Tokyo"), "address.time_zone"),
        (home, "address.time_zone"),
        (None, "remove a debtor's address"),
    ]:
        with pytest.raises(PermissionDenied, match=refused):
            await update.execute(alpha.collector, account.debtor_id, DebtorChanges(address=address))
    moved = msgspec.structs.replace(chicago, line1="2 Elm St")
    debtor = await update.execute(alpha.collector, account.debtor_id, DebtorChanges(address=moved))
    assert debtor.address == moved
    record = world.use(RecordActivity)
    for kind in (ActivityType.CALL, ActivityType.SMS):
        with pytest.raises(Conflict, match=r"\(America/Chicago\)"):
            await record.execute(alpha.collector, account.id, NewActivity(type=kind))
    for address in (msgspec.structs.replace(chicago, time_zone="Asia/Tokyo"), None):
        await update.execute(alpha.admin, account.debtor_id, DebtorChanges(address=address))


async def test_an_edit_does_not_set_cease_communication_without_the_activity(setup):
    world, alpha, account = setup
    with pytest.raises(ValidationFailed, match="cease_communication activity") as refused:
        await world.use(UpdateDebtor).execute(
            alpha.collector,
            account.debtor_id,
            DebtorChanges(contact_preferences=ContactPreferenceChanges(cease_communication=True)),
        )
    assert refused.value.field == "contact_preferences.cease_communication"
    debtor = await world.use(GetDebtor).execute(alpha.admin, account.debtor_id)
    assert not debtor.contact_preferences.cease_communication


async def test_a_promise_to_pay_carries_a_positive_amount_and_only_it_does(setup):
    world, alpha, account = setup
    record = world.use(RecordActivity)
    promise = PromiseToPay(amount=2_500, due_on=date(2026, 2, 1))
    saved = await record.execute(
        alpha.collector, account.id, NewActivity(type=ActivityType.PROMISE_TO_PAY, promise=promise)
    )
    assert saved.promise == promise
    bad = [
        NewActivity(type=ActivityType.PROMISE_TO_PAY),
        NewActivity(type=ActivityType.NOTE, promise=promise),
        NewActivity(
            type=ActivityType.PROMISE_TO_PAY, promise=PromiseToPay(amount=0, due_on=promise.due_on)
        ),
    ]
    for command in bad:
        with pytest.raises(ValidationFailed):
            await record.execute(alpha.collector, account.id, command)


@pytest.mark.parametrize(
    ("due_on", "taken"),
    [
        (date(2026, 1, 3), False),  # two days before the world's today, 2026-01-05
        (date(2026, 1, 4), True),  # still today somewhere west of UTC
        (date(2026, 1, 5), True),
        (date(2027, 1, 5), True),  # a year ahead
        (date(2027, 1, 6), False),
        (date(1, 1, 1), False),
    ],
)
async def test_a_promise_falls_due_from_today_to_a_year_ahead(setup, due_on, taken):
    world, alpha, account = setup
    command = NewActivity(
        type=ActivityType.PROMISE_TO_PAY, promise=PromiseToPay(amount=2_500, due_on=due_on)
    )
    record = world.use(RecordActivity).execute(alpha.collector, account.id, command)
    if taken:
        assert (await record).promise.due_on == due_on
        return
    with pytest.raises(ValidationFailed) as refused:
        await record
    assert refused.value.field == "promise.due_on"


@pytest.mark.parametrize("status", list(AccountStatus))
async def test_promises_need_an_account_being_collected_and_contacts_one_not_recalled(
    setup, status
):
    world, alpha, account = setup
    if status is AccountStatus.PAID_IN_FULL:  # only at a zero balance
        account = await world.account(alpha.admin, external_id="A-0", balance=0)
    if status is not AccountStatus.ACTIVE:
        await world.use(ChangeAccountStatus).execute(alpha.admin, account.id, status)
    record = world.use(RecordActivity)
    promise = NewActivity(
        type=ActivityType.PROMISE_TO_PAY, promise=PromiseToPay(amount=100, due_on=date(2026, 2, 1))
    )
    if status in (AccountStatus.ACTIVE, AccountStatus.DISPUTED):
        await record.execute(alpha.admin, account.id, promise)
    else:
        with pytest.raises(Conflict, match="nothing left to promise"):
            await record.execute(alpha.admin, account.id, promise)
    for kind in (ActivityType.CALL, ActivityType.EMAIL, ActivityType.LETTER, ActivityType.SMS):
        contact = record.execute(alpha.admin, account.id, NewActivity(type=kind))
        if status is AccountStatus.RECALLED:
            with pytest.raises(Conflict, match="recalled"):
                await contact
        else:
            await contact
    for kind in (ActivityType.NOTE, ActivityType.DISPUTE, ActivityType.CEASE_COMMUNICATION):
        await record.execute(alpha.admin, account.id, NewActivity(type=kind))


async def test_activities_page_newest_first(setup):
    world, alpha, account = setup
    for i in range(5):
        await world.use(RecordActivity).execute(
            alpha.collector, account.id, NewActivity(type=ActivityType.NOTE, note=f"n{i}")
        )
    first = await world.use(ListActivities).execute(alpha.collector, account.id, limit=3)
    rest = await world.use(ListActivities).execute(
        alpha.collector, account.id, limit=3, cursor=first.next_cursor
    )
    assert [a.note for a in first.items + rest.items] == ["n4", "n3", "n2", "n1", "n0"]
    assert rest.next_cursor is None


async def test_each_do_not_contact_flag_stops_its_own_channel_only(setup):
    world, alpha, account = setup
    record = world.use(RecordActivity)
    flags = {
        ActivityType.CALL: "do_not_call",
        ActivityType.SMS: "do_not_text",
        ActivityType.EMAIL: "do_not_email",
        ActivityType.LETTER: "do_not_mail",
    }
    for kind, flag in flags.items():
        await world.use(UpdateDebtor).execute(
            alpha.admin,
            account.debtor_id,
            DebtorChanges(
                contact_preferences=ContactPreferenceChanges(
                    **{other: other == flag for other in flags.values()}
                )
            ),
        )
        with pytest.raises(Conflict, match=f"marked {flag}"):
            await record.execute(alpha.collector, account.id, NewActivity(type=kind))
        for allowed in flags.keys() - {kind}:
            await record.execute(alpha.collector, account.id, NewActivity(type=allowed))


async def test_calls_and_texts_reach_a_debtor_between_8_and_21_their_time(setup):
    world, alpha, account = setup  # the clock: 09:00 UTC, 04:00 in Chicago
    await world.use(UpdateDebtor).execute(
        alpha.admin,
        account.debtor_id,
        DebtorChanges(
            address=PostalAddress(
                line1="1 Main St",
                city="Austin",
                state="TX",
                postal_code="78701",
                time_zone="America/Chicago",
            )
        ),
    )
    record = world.use(RecordActivity)
    for kind in (ActivityType.CALL, ActivityType.SMS):
        with pytest.raises(Conflict, match=r"it is 0[34]:\d\d for the debtor \(America/Chicago\)"):
            await record.execute(alpha.collector, account.id, NewActivity(type=kind))
    for kind in (ActivityType.EMAIL, ActivityType.LETTER, ActivityType.NOTE):
        await record.execute(alpha.collector, account.id, NewActivity(type=kind))
    world.clock.advance(timedelta(hours=5))  # 08:00 in Chicago
    for kind in (ActivityType.CALL, ActivityType.SMS):
        await record.execute(alpha.collector, account.id, NewActivity(type=kind))
    world.clock.advance(timedelta(hours=13))  # 21:00 in Chicago
    with pytest.raises(Conflict, match="it is 21:00"):
        await record.execute(alpha.collector, account.id, NewActivity(type=ActivityType.CALL))
