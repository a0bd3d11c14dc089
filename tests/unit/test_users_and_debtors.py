from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from debtflow_core.actor import Actor
from debtflow_core.domain.debtor import ContactPreferences, Phone, PhoneKind, PostalAddress
from debtflow_core.domain.user import Role
from debtflow_core.errors import Conflict, PermissionDenied, ValidationFailed
from debtflow_core.pagination import encode_cursor
from debtflow_core.ports.debtors import DebtorPosition
from debtflow_core.ports.users import UserPosition
from debtflow_core.use_cases.accounts import (
    AccountFilters,
    AssignCollector,
    GetAccount,
    ListAccounts,
)
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_core.use_cases.debtors import (
    ContactPreferenceChanges,
    CreateDebtor,
    DebtorChanges,
    NewDebtor,
    SearchDebtors,
    UpdateDebtor,
)
from debtflow_core.use_cases.users import (
    ChangeUserRole,
    CreateUser,
    DeactivateUser,
    GetUser,
    ListUsers,
    NewUser,
)


def new_user(**overrides) -> NewUser:
    fields = {
        "email": "Grace@Alpha.Example ",
        "full_name": "Grace Hopper",
        "role": Role.COLLECTOR,
        "password": "a long enough password",
    }
    return NewUser(**{**fields, **overrides})


async def test_agencies_have_unique_valid_slugs(world):
    await world.agency("alpha")
    with pytest.raises(Conflict):
        await world.use(CreateAgency).execute(NewAgency(slug="alpha", name="Again"))
    for slug in ["Not A Slug", "gamma\n", "-gamma"]:
        with pytest.raises(ValidationFailed) as caught:
            await world.use(CreateAgency).execute(NewAgency(slug=slug, name="X"))
        assert caught.value.field == "slug"


async def test_creating_users_validates_and_hashes(world):
    alpha = await world.agency("alpha")
    user = await world.use(CreateUser).execute(alpha.admin, new_user())
    assert user.email == "grace@alpha.example"
    assert user.password_hash != "a long enough password"
    assert world.hasher.verify(user.password_hash, "a long enough password")

    with pytest.raises(Conflict):
        await world.use(CreateUser).execute(alpha.admin, new_user(email="GRACE@alpha.example"))
    for field, value in [("email", "nope"), ("role", "boss"), ("password", "short")]:
        with pytest.raises(ValidationFailed) as caught:
            await world.use(CreateUser).execute(alpha.admin, new_user(**{field: value}))
        assert caught.value.field == field


async def test_a_taken_email_is_refused_alike_whichever_agency_holds_it(world):
    alpha, beta = await world.agency("alpha"), await world.agency("beta")
    await world.use(CreateUser).execute(alpha.admin, new_user(email="ours@alpha.example"))
    await world.use(CreateUser).execute(beta.admin, new_user(email="theirs@beta.example"))
    refusals = []
    for email in ("ours@alpha.example", "theirs@beta.example"):
        with pytest.raises(Conflict) as refused:
            await world.use(CreateUser).execute(alpha.admin, new_user(email=email))
        refusals.append(str(refused.value))
        assert email not in str(refused.value)
    assert refusals == ["this email cannot be used for a new user"] * 2


async def test_role_changes_and_deactivation_are_audited_without_secrets(world):
    alpha = await world.agency("alpha")
    user = await world.use(CreateUser).execute(alpha.admin, new_user())
    await world.use(ChangeUserRole).execute(alpha.admin, user.id, Role.READONLY)
    user = await world.use(DeactivateUser).execute(alpha.admin, user.id)
    assert (user.role, user.active) == (Role.READONLY, False)
    assert await world.use(GetUser).execute(alpha.admin, user.id) == user

    entries = (
        await world.use(QueryAuditLog).execute(alpha.admin, AuditFilters(entity_id=user.id))
    ).items
    assert [(e.action, e.before, e.after) for e in entries] == [
        ("user.deactivated", {"active": True}, {"active": False}),
        ("user.role_changed", {"role": "collector"}, {"role": "readonly"}),
        ("user.created", {}, entries[-1].after),
    ]
    assert "password_hash" not in entries[-1].after
    assert entries[-1].after["email"] == "grace@alpha.example"


@pytest.mark.parametrize(
    "change", [{"role": Role.READONLY}, {"active": False}], ids=["demoted", "deactivated"]
)
async def test_a_collector_who_can_no_longer_work_accounts_gives_them_up(world, change):
    alpha = await world.agency("alpha")
    mine = [
        await world.account(alpha.admin, external_id=f"A-{n}", collector=alpha.collector)
        for n in range(3)
    ]
    theirs = await world.account(alpha.admin, external_id="B-1", collector=alpha.colleague)
    collector = alpha.collector.user_id
    if "role" in change:
        await world.use(ChangeUserRole).execute(alpha.admin, collector, change["role"])
    else:
        await world.use(DeactivateUser).execute(alpha.admin, collector)

    unassigned = (
        await world.use(ListAccounts).execute(alpha.admin, AccountFilters(unassigned=True))
    ).items
    assert sorted(a.id for a in unassigned) == sorted(a.id for a in mine)
    kept = await world.use(GetAccount).execute(alpha.admin, theirs.id)
    assert kept.assigned_collector_id == alpha.colleague.user_id
    for account in mine:
        entries = (
            await world.use(QueryAuditLog).execute(alpha.admin, AuditFilters(entity_id=account.id))
        ).items
        assert (entries[0].action, entries[0].actor_id) == (
            "account.unassigned",
            alpha.admin.user_id,
        )
        assert (entries[0].before, entries[0].after) == (
            {"assigned_collector_id": str(collector)},
            {"assigned_collector_id": None},
        )
    with pytest.raises(ValidationFailed) as refused:
        await world.use(AssignCollector).execute(alpha.admin, mine[0].id, collector)
    assert refused.value.field == "collector_id"


async def test_a_collector_role_given_again_or_an_admin_deactivated_unassigns_nothing(world):
    alpha = await world.agency("alpha")
    account = await world.account(alpha.admin, external_id="A-1", collector=alpha.collector)
    await world.use(ChangeUserRole).execute(alpha.admin, alpha.collector.user_id, Role.COLLECTOR)
    second = await second_admin(world, alpha)
    await world.use(DeactivateUser).execute(alpha.admin, second.user_id)
    kept = await world.use(GetAccount).execute(alpha.admin, account.id)
    assert kept.assigned_collector_id == alpha.collector.user_id


async def test_admins_cannot_lock_themselves_out(world):
    alpha = await world.agency("alpha")
    with pytest.raises(Conflict):
        await world.use(ChangeUserRole).execute(alpha.admin, alpha.admin.user_id, Role.READONLY)
    with pytest.raises(Conflict):
        await world.use(DeactivateUser).execute(alpha.admin, alpha.admin.user_id)


async def second_admin(world, alpha) -> Actor:
    """Another admin of alpha, as signed in: the actor keeps that role whatever is stored later."""
    user = await world.use(CreateUser).execute(
        alpha.admin, new_user(email="second@alpha.example", role=Role.AGENCY_ADMIN)
    )
    return Actor(user_id=user.id, agency_id=user.agency_id, role=Role.AGENCY_ADMIN)


@pytest.mark.parametrize(
    "change", [{"role": Role.READONLY}, {"active": False}], ids=["demoted", "deactivated"]
)
async def test_an_admin_demoted_or_deactivated_since_signing_in_changes_no_user(world, change):
    alpha = await world.agency("alpha")
    second = await second_admin(world, alpha)
    if "role" in change:
        await world.use(ChangeUserRole).execute(alpha.admin, second.user_id, change["role"])
    else:
        await world.use(DeactivateUser).execute(alpha.admin, second.user_id)
    with pytest.raises(PermissionDenied):
        await world.use(ChangeUserRole).execute(second, alpha.admin.user_id, Role.READONLY)
    with pytest.raises(PermissionDenied):
        await world.use(DeactivateUser).execute(second, alpha.collector.user_id)
    admin = await world.use(GetUser).execute(alpha.admin, alpha.admin.user_id)
    collector = await world.use(GetUser).execute(alpha.admin, alpha.collector.user_id)
    assert (admin.role, admin.active, collector.active) == (Role.AGENCY_ADMIN, True, True)


async def test_users_see_themselves_and_admins_see_everyone(world):
    alpha = await world.agency("alpha")
    me = await world.use(GetUser).execute(alpha.collector, alpha.collector.user_id)
    assert me.role is Role.COLLECTOR
    assert len((await world.use(ListUsers).execute(alpha.admin)).items) == 4


async def test_users_are_listed_by_email_a_page_at_a_time(world):
    alpha = await world.agency("alpha")
    await world.agency("beta")
    list_ = world.use(ListUsers)
    seen, cursor = [], None
    while True:
        page = await list_.execute(alpha.admin, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [u.email for u in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == sorted(
        f"{n}@alpha.example" for n in ("admin", "collector", "colleague", "readonly")
    )
    collectors = await list_.execute(alpha.admin, role="collector")
    assert [u.email for u in collectors.items] == [
        "colleague@alpha.example",
        "collector@alpha.example",
    ]
    await world.use(DeactivateUser).execute(alpha.admin, alpha.collector.user_id)
    gone = await list_.execute(alpha.admin, active=False)
    assert [u.id for u in gone.items] == [alpha.collector.user_id]
    kept = await list_.execute(alpha.admin, role=Role.COLLECTOR, active=True)
    assert [u.email for u in kept.items] == ["colleague@alpha.example"]


async def test_bad_user_list_inputs_are_validation_errors(world):
    alpha = await world.agency("alpha")
    debtors_cursor = encode_cursor(DebtorPosition(datetime.now(UTC), uuid.uuid4()))
    for kwargs, field in (
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": debtors_cursor}, "cursor"),
        ({"cursor": encode_cursor(UserPosition("a\x00b@alpha.example"))}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"role": "boss"}, "role"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            await world.use(ListUsers).execute(alpha.admin, **kwargs)
        assert caught.value.field == field


async def test_debtors_round_trip_partial_updates_and_search(world):
    alpha = await world.agency("alpha")
    created = await world.use(CreateDebtor).execute(
        alpha.admin,
        NewDebtor(
            external_id="D-1",
            first_name=" Ada ",
            last_name="Lovelace",
            date_of_birth=date(1985, 12, 10),
            phones=(Phone(number="+15555550100", kind=PhoneKind.MOBILE),) * 2,
            emails=("ADA@example.com", "ada@example.com"),  # one address, kept once
            address=PostalAddress(
                line1="1 Analytical Way",
                city="Austin",
                state="TX",
                postal_code="73301",
                time_zone="America/Chicago",
            ),
        ),
    )
    assert (created.first_name, created.emails) == ("Ada", ("ada@example.com",))
    assert created.phones == (Phone(number="+15555550100", kind=PhoneKind.MOBILE),)
    with pytest.raises(Conflict):
        await world.use(CreateDebtor).execute(
            alpha.admin, NewDebtor(external_id="D-1", first_name="B", last_name="C")
        )

    updated = await world.use(UpdateDebtor).execute(
        alpha.admin,
        created.id,
        DebtorChanges(
            last_name="King", contact_preferences=ContactPreferenceChanges(do_not_call=True)
        ),
    )
    assert (updated.first_name, updated.last_name) == ("Ada", "King")
    assert updated.contact_preferences == ContactPreferences(do_not_call=True)
    emails_too = await world.use(UpdateDebtor).execute(
        alpha.admin,
        created.id,
        DebtorChanges(contact_preferences=ContactPreferenceChanges(do_not_email=True)),
    )
    assert emails_too.contact_preferences == ContactPreferences(do_not_call=True, do_not_email=True)
    updated = await world.use(UpdateDebtor).execute(
        alpha.admin,
        created.id,
        DebtorChanges(contact_preferences=ContactPreferenceChanges(do_not_email=False)),
    )
    assert updated.contact_preferences == ContactPreferences(do_not_call=True)
    assert updated.phones == created.phones
    unchanged = await world.use(UpdateDebtor).execute(
        alpha.admin, created.id, DebtorChanges(last_name="King")
    )
    assert unchanged == updated
    with pytest.raises(ValidationFailed):
        await world.use(UpdateDebtor).execute(alpha.admin, created.id, DebtorChanges(emails=("x",)))

    await world.debtor(alpha.admin, "Alan", "Turing")
    found = await world.use(SearchDebtors).execute(alpha.admin, text="ada k")
    assert [d.id for d in found.items] == [created.id]
    assert len((await world.use(SearchDebtors).execute(alpha.admin)).items) == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"phones": (Phone(number="abc"),)}, "phones[0].number"),
        ({"phones": (Phone(number="+15555550100"), Phone(number=""))}, "phones[1].number"),
        ({"phones": (Phone(number="5" * 1_000_000),)}, "phones[0].number"),
        ({"emails": ("ada@example.com", "ada at example")}, "emails[1]"),
        ({"emails": tuple(f"ada{n}@example.com" for n in range(11))}, "emails"),
        ({"phones": tuple(Phone(number=f"+1555555{n:04}") for n in range(11))}, "phones"),
        (
            {
                "address": PostalAddress(
                    line1="x" * 1_000_000, city="Austin", state="TX", postal_code="73301"
                )
            },
            "address.line1",
        ),
        (
            {"address": PostalAddress(line1="1 Main", city=" ", state="", postal_code="")},
            "address.city",
        ),
        (
            {
                "address": PostalAddress(
                    line1="1 Main", city="Austin", state="TX", postal_code="73301", country="ZZZ"
                )
            },
            "address.country",
        ),
        (
            {
                "address": PostalAddress(
                    line1="1 Main",
                    city="Austin",
                    state="TX",
                    postal_code="73301",
                    time_zone="Mars/Olympus",
                )
            },
            "address.time_zone",
        ),
        ({"date_of_birth": date(2099, 1, 1)}, "date_of_birth"),
        ({"date_of_birth": date(1850, 1, 1)}, "date_of_birth"),
    ],
)
async def test_debtors_contact_data_follows_the_placement_rules(world, fields, field):
    alpha = await world.agency("alpha")
    debtor = await world.debtor(alpha.admin)
    with pytest.raises(ValidationFailed) as created:
        await world.use(CreateDebtor).execute(
            alpha.admin, NewDebtor(first_name="Ada", last_name="Lovelace", **fields)
        )
    with pytest.raises(ValidationFailed) as updated:
        await world.use(UpdateDebtor).execute(alpha.admin, debtor.id, DebtorChanges(**fields))
    assert created.value.field == updated.value.field == field


async def test_debtors_contact_data_is_kept_trimmed_with_codes_in_upper_case(world):
    alpha = await world.agency("alpha")
    created = await world.use(CreateDebtor).execute(
        alpha.admin,
        NewDebtor(
            first_name="Ada",
            last_name="Lovelace",
            date_of_birth=date(2026, 1, 5),  # today, by the world's clock
            phones=(Phone(number=" (512) 555-0100 ", kind=PhoneKind.HOME),),
            emails=(" Ada@Example.com ",),
            address=PostalAddress(
                line1=" 1 Main St ",
                city="Montréal",
                state="qc",
                postal_code=" H2X 1Y4 ",
                country="ca",
                time_zone="America/Toronto",
            ),
        ),
    )
    assert created.phones == (Phone(number="(512) 555-0100", kind=PhoneKind.HOME),)
    assert created.emails == ("ada@example.com",)
    assert created.address == PostalAddress(
        line1="1 Main St",
        city="Montréal",
        state="QC",
        postal_code="H2X 1Y4",
        country="CA",
        time_zone="America/Toronto",
    )
    cleared = await world.use(UpdateDebtor).execute(
        alpha.admin, created.id, DebtorChanges(date_of_birth=None, address=None)
    )
    assert (cleared.date_of_birth, cleared.address) == (None, None)
