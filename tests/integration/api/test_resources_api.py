"""Every resource route's success and error shapes, through the real app."""

from __future__ import annotations

import uuid

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:debtflow:problem:")
    assert body["title"]
    if field is not None:
        assert field in {error["field"] for error in body["errors"]}, body
    return body


async def test_a_taken_email_gets_the_same_409_whichever_agency_holds_it(api, alpha):
    await api.tenant("beta")
    answers = []
    for email in ("collector@alpha.example", "collector@beta.example"):
        taken = await api.client.post(
            "/v1/users",
            headers=alpha.headers["admin"],
            json={"email": email, "full_name": "X", "role": "readonly", "password": "p" * 12},
        )
        assert email not in taken.text
        answers.append(assert_problem(taken, 409))
    assert answers[0] == answers[1]
    assert answers[0]["detail"] == "this email cannot be used for a new user"


async def test_users_are_listed_created_read_changed_and_deactivated(api, alpha):
    admin = alpha.headers["admin"]
    listed = await api.client.get("/v1/users", headers=admin)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 4

    created = await api.client.post(
        "/v1/users",
        headers=admin,
        json={
            "email": "New@Alpha.example",
            "full_name": "New Person",
            "role": "collector",
            "password": "a long password",
        },
    )
    assert created.status_code == 201
    user = created.json()
    assert (user["email"], user["role"], user["active"]) == ("new@alpha.example", "collector", True)
    assert "password" not in created.text

    fetched = await api.client.get(f"/v1/users/{user['id']}", headers=admin)
    assert fetched.json() == user
    changed = await api.client.patch(
        f"/v1/users/{user['id']}", headers=admin, json={"role": "readonly"}
    )
    assert changed.json()["role"] == "readonly"
    gone = await api.client.post(f"/v1/users/{user['id']}/deactivate", headers=admin)
    assert (gone.status_code, gone.json()["active"]) == (200, False)

    duplicate = await api.client.post(
        "/v1/users",
        headers=admin,
        json={
            "email": "new@alpha.example",
            "full_name": "X",
            "role": "readonly",
            "password": "p" * 12,
        },
    )
    assert_problem(duplicate, 409)
    weak = await api.client.post(
        "/v1/users",
        headers=admin,
        json={
            "email": "weak@alpha.example",
            "full_name": "X",
            "role": "readonly",
            "password": "short",
        },
    )
    assert_problem(weak, 422, "password")
    bad_role = await api.client.post(
        "/v1/users",
        headers=admin,
        json={"email": "b@alpha.example", "full_name": "X", "role": "boss", "password": "p" * 12},
    )
    assert_problem(bad_role, 400, "role")
    assert_problem(await api.client.get(f"/v1/users/{uuid.uuid4()}", headers=admin), 404)
    own = await api.client.patch(
        f"/v1/users/{alpha.id_of('admin')}", headers=admin, json={"role": "readonly"}
    )
    assert_problem(own, 409)


async def test_users_are_listed_by_email_a_page_at_a_time(api, alpha):
    admin = alpha.headers["admin"]
    await api.tenant("beta")  # whose users alpha's admin never sees
    for name in ("ann", "bob", "zed"):
        created = await api.client.post(
            "/v1/users",
            headers=admin,
            json={
                "email": f"{name}@alpha.example",
                "full_name": name.title(),
                "role": "readonly",
                "password": "a long password",
            },
        )
        assert created.status_code == 201, created.text
    names = ("admin", "ann", "bob", "colleague", "collector", "readonly", "zed")
    emails = [f"{name}@alpha.example" for name in names]

    first = await api.client.get("/v1/users", headers=admin, params={"limit": 3})
    assert first.status_code == 200, first.text
    assert set(first.json()) == {"items", "next_cursor"}
    assert [u["email"] for u in first.json()["items"]] == emails[:3]
    assert "password" not in first.text
    pages, cursor = [first.json()], first.json()["next_cursor"]
    while cursor:
        page = await api.client.get(
            "/v1/users", headers=admin, params={"limit": 3, "cursor": cursor}
        )
        assert page.status_code == 200, page.text
        pages.append(page.json())
        cursor = page.json()["next_cursor"]
    seen = [u["email"] for page in pages for u in page["items"]]
    assert (seen, [len(page["items"]) for page in pages]) == (emails, [3, 3, 1])
    whole = (await api.client.get("/v1/users", headers=admin, params={"limit": 7})).json()
    assert ([u["email"] for u in whole["items"]], whole["next_cursor"]) == (emails, None)

    async def listed(**params) -> list[str]:
        response = await api.client.get("/v1/users", headers=admin, params=params)
        assert response.status_code == 200, response.text
        return [u["email"] for u in response.json()["items"]]

    assert await listed(limit=1) == emails[:1]
    assert await listed(limit=200) == emails
    assert await listed(role="collector") == ["colleague@alpha.example", "collector@alpha.example"]
    readers = await api.client.get(
        "/v1/users", headers=admin, params={"role": "readonly", "limit": 2}
    )
    assert [u["email"] for u in readers.json()["items"]] == emails[1:3]
    cursor = readers.json()["next_cursor"]
    assert await listed(role="readonly", cursor=cursor) == [emails[5], emails[6]]
    deactivated = await api.client.post(
        f"/v1/users/{alpha.id_of('collector')}/deactivate", headers=admin
    )
    assert deactivated.status_code == 200
    assert await listed(active="false") == ["collector@alpha.example"]
    assert await listed(active="true", role="collector") == ["colleague@alpha.example"]
    assert len(await listed(active="true")) == 6


async def test_bad_user_list_parameters_are_problems(api, alpha):
    admin = alpha.headers["admin"]
    await alpha.debtor("Ada", "Lovelace")
    await alpha.debtor("Alan", "Turing")
    debtors = await api.client.get("/v1/debtors", headers=admin, params={"limit": 1})
    debtors_cursor = debtors.json()["next_cursor"]
    assert debtors_cursor
    # A cursor the query's schema refuses (too long) is malformed, a 400; one that names no
    # place in this list breaks a rule, a 422, as on every list.
    for params, status, field in [
        ({"limit": 0}, 400, "limit"),
        ({"limit": 201}, 400, "limit"),
        ({"limit": "ten"}, 400, "limit"),
        ({"cursor": "x" * 513}, 400, "cursor"),
        ({"cursor": "garbage"}, 422, "cursor"),
        ({"cursor": debtors_cursor}, 422, "cursor"),
        ({"role": "boss"}, 400, "role"),
        ({"active": "maybe"}, 400, "active"),
    ]:
        response = await api.client.get("/v1/users", headers=admin, params=params)
        assert_problem(response, status, field)


async def test_a_deactivated_collectors_accounts_go_back_to_the_unassigned_queue(api, alpha):
    admin = alpha.headers["admin"]
    mine = [(await alpha.account(f"A-{n}", collector="collector")).id for n in range(2)]
    theirs = await alpha.account("B-1", collector="colleague")
    collector = alpha.id_of("collector")

    gone = await api.client.post(f"/v1/users/{collector}/deactivate", headers=admin)
    assert gone.status_code == 200
    queue = await api.client.get("/v1/accounts", headers=admin, params={"unassigned": "true"})
    assert sorted(a["id"] for a in queue.json()["items"]) == sorted(map(str, mine))
    kept = await api.client.get(f"/v1/accounts/{theirs.id}", headers=admin)
    assert kept.json()["assigned_collector_id"] == str(alpha.id_of("colleague"))
    trail = await api.client.get("/v1/audit-log", headers=admin, params={"entity_id": str(mine[0])})
    newest = trail.json()["items"][0]
    assert (newest["action"], newest["before"], newest["after"]) == (
        "account.unassigned",
        {"assigned_collector_id": str(collector)},
        {"assigned_collector_id": None},
    )
    again = await api.client.put(
        f"/v1/accounts/{mine[0]}/collector", headers=admin, json={"collector_id": str(collector)}
    )
    assert_problem(again, 422, "collector_id")


async def test_debtors_are_created_searched_read_and_corrected(api, alpha):
    admin = alpha.headers["admin"]
    body = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "external_id": "D-1",
        "date_of_birth": "1985-12-10",
        "phones": [{"number": "+15555550100", "kind": "mobile"}],
        "emails": ["Ada@Example.com"],
        "address": {
            "line1": "1 Analytical Way",
            "city": "Austin",
            "state": "TX",
            "postal_code": "73301",
            "time_zone": "America/Chicago",
        },
    }
    created = await api.client.post("/v1/debtors", headers=admin, json=body)
    assert created.status_code == 201
    debtor = created.json()
    assert debtor["emails"] == ["ada@example.com"]
    assert debtor["contact_preferences"]["cease_communication"] is False

    found = await api.client.get("/v1/debtors", headers=admin, params={"text": "lovel"})
    assert [d["id"] for d in found.json()["items"]] == [debtor["id"]]
    assert found.json()["next_cursor"] is None
    patched = await api.client.patch(
        f"/v1/debtors/{debtor['id']}", headers=admin, json={"last_name": "King"}
    )
    assert patched.json()["last_name"] == "King"
    assert (await api.client.get(f"/v1/debtors/{debtor['id']}", headers=admin)).json() == (
        patched.json()
    )

    assert_problem(await api.client.post("/v1/debtors", headers=admin, json=body), 409)
    assert_problem(
        await api.client.post("/v1/debtors", headers=admin, json={**body, "nickname": "A"}),
        400,
        "nickname",
    )
    assert_problem(
        await api.client.post(
            "/v1/debtors",
            headers=admin,
            json={**body, "external_id": "D-2", "date_of_birth": "1985-02-30"},
        ),
        400,
        "date_of_birth",
    )
    assert_problem(
        await api.client.post(
            "/v1/debtors", headers=admin, json={**body, "external_id": "D-3", "first_name": " "}
        ),
        422,
        "first_name",
    )
    assert_problem(
        await api.client.patch(
            f"/v1/debtors/{debtor['id']}", headers=admin, json={"emails": ["x"]}
        ),
        422,
        "emails[0]",
    )
    assert_problem(await api.client.get(f"/v1/debtors/{uuid.uuid4()}", headers=admin), 404)
    assert_problem(await api.client.get("/v1/debtors/not-a-uuid", headers=admin), 404)


async def test_debtors_contact_data_follows_the_placement_rules(api, alpha):
    admin = alpha.headers["admin"]
    address = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "73301"}
    debtor = (
        await api.client.post(
            "/v1/debtors", headers=admin, json={"first_name": "Ada", "last_name": "Lovelace"}
        )
    ).json()
    for changes, field in [
        ({"phones": [{"number": "abc"}]}, "phones[0].number"),
        ({"phones": [{"number": "5" * 100_000}]}, "phones[0].number"),
        ({"emails": ["ada@example.com", "nope"]}, "emails[1]"),
        ({"address": {**address, "line1": "x" * 100_000}}, "address.line1"),
        ({"address": {**address, "state": "Texas"}}, "address.state"),
        ({"address": {**address, "country": "ZZZ"}}, "address.country"),
        ({"address": {**address, "time_zone": "Mars/Olympus"}}, "address.time_zone"),
        ({"date_of_birth": "2099-01-01"}, "date_of_birth"),
    ]:
        created = await api.client.post(
            "/v1/debtors", headers=admin, json={"first_name": "A", "last_name": "B", **changes}
        )
        assert_problem(created, 422, field)
        patched = await api.client.patch(f"/v1/debtors/{debtor['id']}", headers=admin, json=changes)
        assert_problem(patched, 422, field)
    stored = await api.client.get(f"/v1/debtors/{debtor['id']}", headers=admin)
    assert stored.json() == debtor


async def test_accounts_are_placed_listed_paged_and_managed(api, alpha):
    admin = alpha.headers["admin"]
    debtor = await alpha.debtor("Grace", "Hopper")
    placed = []
    for number in range(5):
        response = await api.client.post(
            "/v1/accounts",
            headers=admin,
            json={
                "debtor_id": str(debtor.id),
                "external_id": f"ACC-{number}",
                "original_creditor": "First Bank",
                "currency": "USD",
                "placed_balance": 1_000 * (number + 1),
                "charge_off_date": "2025-06-30",
            },
        )
        assert response.status_code == 201, response.text
        placed.append(response.json())
    assert placed[0]["current_balance"] == placed[0]["placed_balance"] == 1_000
    assert placed[0]["status"] == "active"

    first = await api.client.get("/v1/accounts", headers=admin, params={"limit": 2})
    assert first.status_code == 200
    seen = [a["id"] for a in first.json()["items"]]
    cursor = first.json()["next_cursor"]
    while cursor:
        page = await api.client.get(
            "/v1/accounts", headers=admin, params={"limit": 2, "cursor": cursor}
        )
        seen += [a["id"] for a in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert seen == [a["id"] for a in reversed(placed)]

    richest = await api.client.get(
        "/v1/accounts",
        headers=admin,
        params={
            "sort": "balance_desc",
            "min_balance": 2_000,
            "max_balance": 4_000,
            "text": "hopper",
        },
    )
    assert [a["placed_balance"] for a in richest.json()["items"]] == [4_000, 3_000, 2_000]

    account_id = placed[0]["id"]
    fetched = await api.client.get(f"/v1/accounts/{account_id}", headers=admin)
    assert fetched.json() == placed[0]
    assigned = await api.client.put(
        f"/v1/accounts/{account_id}/collector",
        headers=admin,
        json={"collector_id": str(alpha.id_of("collector"))},
    )
    assert assigned.json()["assigned_collector_id"] == str(alpha.id_of("collector"))
    mine = await api.client.get("/v1/accounts", headers=alpha.headers["collector"])
    assert [a["id"] for a in mine.json()["items"]] == [account_id]
    unassigned = await api.client.delete(f"/v1/accounts/{account_id}/collector", headers=admin)
    assert (unassigned.status_code, unassigned.json()["assigned_collector_id"]) == (200, None)

    closed = await api.client.put(
        f"/v1/accounts/{account_id}/status", headers=admin, json={"status": "recalled"}
    )
    assert closed.json()["status"] == "recalled"
    refused = await api.client.put(
        f"/v1/accounts/{account_id}/status", headers=admin, json={"status": "active"}
    )
    assert "recalled to active" in assert_problem(refused, 409)["detail"]
    assert_problem(
        await api.client.put(
            f"/v1/accounts/{account_id}/status", headers=admin, json={"status": "gone"}
        ),
        400,
        "status",
    )
    assert_problem(
        await api.client.put(
            f"/v1/accounts/{placed[1]['id']}/collector",
            headers=admin,
            json={"collector_id": str(alpha.id_of("readonly"))},
        ),
        422,
        "collector_id",
    )


async def test_account_placement_and_list_errors(api, alpha):
    admin = alpha.headers["admin"]
    debtor = await alpha.debtor()
    good = {
        "debtor_id": str(debtor.id),
        "external_id": "ACC-1",
        "original_creditor": "Bank",
        "currency": "USD",
        "placed_balance": 100,
    }
    assert (await api.client.post("/v1/accounts", headers=admin, json=good)).status_code == 201
    assert_problem(await api.client.post("/v1/accounts", headers=admin, json=good), 409)
    cases = [
        ({**good, "external_id": "A2", "placed_balance": -1}, 422, "placed_balance"),
        ({**good, "external_id": "A3", "placed_balance": 10.5}, 400, "placed_balance"),
        ({**good, "external_id": "A5", "currency": "usd"}, 422, "currency"),
        ({**good, "external_id": "A6", "debtor_id": str(uuid.uuid4())}, 422, "debtor_id"),
        ({key: value for key, value in good.items() if key != "currency"}, 400, "currency"),
    ]
    for body, status, field in cases:
        assert_problem(
            await api.client.post("/v1/accounts", headers=admin, json=body), status, field
        )

    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 500}, "limit"),
        ({"status": "lost"}, "status"),
        ({"min_balance": -(10**12) - 1}, "min_balance"),
        ({"cursor": "garbage"}, "cursor"),
        ({"collector_id": "nope"}, "collector_id"),
    ]:
        response = await api.client.get("/v1/accounts", headers=admin, params=params)
        assert response.status_code in (400, 422), (params, response.text)
        assert_problem(response, response.status_code, field)


async def test_activities_are_recorded_and_listed(api, alpha):
    account = await alpha.account("ACC-1", collector="collector")
    collector = alpha.headers["collector"]
    url = f"/v1/accounts/{account.id}/activities"
    promise = await api.client.post(
        url,
        headers=collector,
        json={"type": "promise_to_pay", "promise": {"amount": 2_500, "due_on": "2026-04-01"}},
    )
    assert promise.status_code == 201
    assert promise.json()["actor_id"] == str(alpha.id_of("collector"))
    dispute = await api.client.post(
        url, headers=collector, json={"type": "dispute", "note": "not mine"}
    )
    assert dispute.status_code == 201
    listed = await api.client.get(url, headers=collector)
    assert [a["type"] for a in listed.json()["items"]] == ["dispute", "promise_to_pay"]
    account_now = await api.client.get(f"/v1/accounts/{account.id}", headers=collector)
    assert account_now.json()["status"] == "disputed"

    assert_problem(
        await api.client.post(url, headers=collector, json={"type": "promise_to_pay"}),
        422,
        "promise",
    )
    assert_problem(
        await api.client.post(url, headers=collector, json={"type": "telepathy"}), 400, "type"
    )
    ceased = await api.client.post(url, headers=collector, json={"type": "cease_communication"})
    assert ceased.status_code == 201
    assert_problem(await api.client.post(url, headers=collector, json={"type": "call"}), 409)

    debtor_url = f"/v1/debtors/{account.debtor_id}"
    # A collector may stop a channel; only an agency admin may open it again.
    stopped = await api.client.patch(
        debtor_url, headers=collector, json={"contact_preferences": {"do_not_call": True}}
    )
    assert stopped.status_code == 200, stopped.text
    assert_problem(
        await api.client.patch(
            debtor_url, headers=collector, json={"contact_preferences": {"do_not_call": False}}
        ),
        403,
    )
    for who, body in [  # the OpenAPI example, then flags left as they were
        ("admin", {"last_name": "King", "contact_preferences": {"do_not_call": True}}),
        ("admin", {"contact_preferences": {"do_not_call": False}}),
    ]:
        edited = await api.client.patch(debtor_url, headers=alpha.headers[who], json=body)
        assert edited.status_code == 200, edited.text
        assert edited.json()["contact_preferences"] == {
            "do_not_call": body["contact_preferences"]["do_not_call"],
            "do_not_email": False,
            "do_not_text": False,
            "do_not_mail": False,
            "cease_communication": True,
        }
    lifted = await api.client.patch(
        debtor_url, headers=collector, json={"contact_preferences": {"cease_communication": False}}
    )
    assert_problem(lifted, 422, "contact_preferences.cease_communication")
    assert (await api.client.get(debtor_url, headers=collector)).json()["contact_preferences"][
        "cease_communication"
    ] is True
    assert_problem(await api.client.post(url, headers=collector, json={"type": "call"}), 409)


async def test_the_audit_log_is_queried_by_entity_actor_and_time(api, alpha):
    admin = alpha.headers["admin"]
    account = await alpha.account("ACC-1", collector="collector")
    await api.client.put(
        f"/v1/accounts/{account.id}/status", headers=admin, json={"status": "closed"}
    )
    by_entity = await api.client.get(
        "/v1/audit-log",
        headers=admin,
        params={"entity_type": "account", "entity_id": str(account.id)},
    )
    actions = [e["action"] for e in by_entity.json()["items"]]
    assert actions == ["account.status_changed", "account.assigned", "account.placed"]
    latest = by_entity.json()["items"][0]
    assert (latest["before"], latest["after"]) == ({"status": "active"}, {"status": "closed"})
    assert latest["actor_id"] == str(alpha.id_of("admin"))

    by_actor = await api.client.get(
        "/v1/audit-log", headers=admin, params={"actor_id": str(alpha.id_of("admin")), "limit": 1}
    )
    assert len(by_actor.json()["items"]) == 1
    assert by_actor.json()["next_cursor"]
    since = latest["occurred_at"]
    windowed = await api.client.get("/v1/audit-log", headers=admin, params={"since": since})
    assert [e["id"] for e in windowed.json()["items"]] == [latest["id"]]
    assert_problem(
        await api.client.get(
            "/v1/audit-log", headers=admin, params={"since": "2026-01-01T00:00:00"}
        ),
        422,
        "since",
    )


async def test_health_readiness_and_the_openapi_document(api):
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    ready = await api.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert [d["name"] for d in ready.json()["dependencies"]] == [
        "database",
        "object_storage",
        "payment_gateway",
    ]
    schema = (await api.client.get("/schema/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert (await api.client.get("/schema/swagger")).status_code == 200


PUBLIC_OPERATIONS = {
    "getHealth",
    "getReadiness",
    "getMetrics",
    "createToken",
    "refreshToken",
    "receiveStripeWebhook",  # signed by Stripe instead
    "downloadFile",  # the link is signed instead
}


async def test_every_operation_documents_its_auth_errors_and_examples(api):
    schema = (await api.client.get("/schema/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            name = operation["operationId"]
            assert operation.get("description"), name
            if name not in PUBLIC_OPERATIONS:
                assert operation["security"] == [{"BearerToken": []}], name
                assert "401" in operation["responses"], name
            errors = [status for status in operation["responses"] if status.startswith("4")]
            if name not in {"getHealth", "getReadiness", "getMetrics"}:  # they take no input
                assert errors, name
            for status in set(errors) - {"402"}:  # a declined payment answers the payment
                assert "application/problem+json" in operation["responses"][status]["content"], (
                    name,
                    status,
                )
            if "requestBody" in operation:
                content = operation["requestBody"]["content"]
                body = content.get("application/json") or content["multipart/form-data"]
                assert body.get("examples") or body["schema"].get("examples"), (method, path)


async def test_every_response_has_a_request_id_and_security_headers(api):
    echoed = await api.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    forged = await api.client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert forged.headers["x-request-id"] != "bad id\nwith newline"
    missing = await api.client.get("/no/such/route")
    assert_problem(missing, 404)
    for response in (echoed, missing):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-request-id"]
    assert_problem(await api.client.delete("/health"), 405)


async def test_malformed_inputs_are_named_as_the_client_wrote_them(api, alpha):
    admin = alpha.headers["admin"]
    names = {"first_name": "Ada", "last_name": "Lovelace"}
    cases = [
        ({**names, "phones": [{"kind": "mobile"}]}, "phones[0].number"),
        ({**names, "contact_preferences": {"bogus": True}}, "contact_preferences.bogus"),
        ({**names, "bogus": 1}, "bogus"),
        ({**names, "first_name": 5}, "first_name"),
        ({"last_name": "Lovelace"}, "first_name"),
        ({**names, "emails": ["ada@example.com"] * 11}, "emails"),
    ]
    for body, field in cases:
        response = await api.client.post("/v1/debtors", headers=admin, json=body)
        assert [e["field"] for e in assert_problem(response, 400)["errors"]] == [field]
    json = {**admin, "content-type": "application/json"}
    empty = await api.client.post("/v1/debtors", headers=json, content=b"")
    assert assert_problem(empty, 400)["errors"] == [
        {"field": "body", "message": "a JSON body is required"}
    ]
    # Values a lenient decoding would take for another type: a string for a boolean, the
    # string "null" for nothing.
    for body, field in [
        (
            {**names, "contact_preferences": {"do_not_call": "true"}},
            "contact_preferences.do_not_call",
        ),
        ({**names, "date_of_birth": "null"}, "date_of_birth"),
    ]:
        response = await api.client.post("/v1/debtors", headers=admin, json=body)
        assert [e["field"] for e in assert_problem(response, 400)["errors"]] == [field]
    no_key = await api.client.post("/v1/payments", headers=admin, json={})
    assert assert_problem(no_key, 400)["errors"] == [
        {"field": "Idempotency-Key", "message": "is required"}
    ]
    empty_key = await api.client.post(
        "/v1/payments", headers={**admin, "Idempotency-Key": ""}, json={}
    )
    assert_problem(empty_key, 400, "Idempotency-Key")
    xml = await api.client.get(f"/v1/imports/{uuid.uuid4()}/errors?format=xml", headers=admin)
    assert [e["field"] for e in assert_problem(xml, 400)["errors"]] == ["format"]


async def test_json_nested_too_deeply_is_a_400_not_a_crash(api, alpha):
    deep = b"[" * 2_000 + b"]" * 2_000
    json = {"content-type": "application/json"}
    for path, headers in (
        ("/v1/auth/token", json),
        ("/v1/debtors", {**alpha.headers["admin"], **json}),
    ):
        response = await api.client.post(path, headers=headers, content=deep)
        assert assert_problem(response, 400)["detail"] == "the JSON is nested too deeply"


async def test_a_body_that_cannot_be_read_is_a_400_in_our_words(api, alpha):
    json = {**alpha.headers["admin"], "content-type": "application/json"}
    for body, reason in [
        (b"{", "ends before its JSON value does"),
        (b"first_name=Ada&last_name=Lovelace", "is not valid JSON near byte 5"),
        (b'{"first_name": "Ada",}', "is not valid JSON near byte 21"),
        (b'{"first_name": "\xff", "last_name": "Lovelace"}', "is not UTF-8 text"),
    ]:
        response = await api.client.post("/v1/debtors", headers=json, content=body)
        problem = assert_problem(response, 400)
        assert (problem["detail"], problem["errors"]) == (
            "the body cannot be read as JSON",
            [{"field": "body", "message": reason}],
        ), body
    form = {**alpha.headers["admin"], "content-type": "multipart/form-data; boundary=b"}
    cut_short = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\na'
    response = await api.client.post("/v1/imports", headers=form, content=cut_short)
    detail = assert_problem(response, 400)["detail"]
    assert detail == "the body cannot be read as a multipart/form-data form"


async def test_what_a_post_creates_is_where_its_location_says(api, alpha):
    admin = alpha.headers["admin"]
    debtor = await api.client.post(
        "/v1/debtors", headers=admin, json={"first_name": "Ada", "last_name": "Lovelace"}
    )
    account = await api.client.post(
        "/v1/accounts",
        headers=admin,
        json={
            "debtor_id": debtor.json()["id"],
            "external_id": "LOC-1",
            "original_creditor": "Bank",
            "currency": "USD",
            "placed_balance": 1_000,
        },
    )
    user = await api.client.post(
        "/v1/users",
        headers=admin,
        json={
            "email": "located@alpha.example",
            "full_name": "Lo Cated",
            "role": "readonly",
            "password": "a long password",
        },
    )
    for created, collection in ((debtor, "debtors"), (account, "accounts"), (user, "users")):
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location == f"/v1/{collection}/{created.json()['id']}"
        assert (await api.client.get(location, headers=admin)).json() == created.json()


# The answers that carry a Location, by operation: these handlers answer through
# debtflow_http.resources.created.located, which sets it whatever the status.
LOCATED = {
    "createUser": {"201"},
    "createDebtor": {"201"},
    "placeAccount": {"201"},
    "createFileSource": {"201"},
    "makePayment": {"201", "202", "402"},  # taken, pending or declined, the payment is made
    "uploadPlacementFile": {"202", "200"},  # queued, or the run the same content had
    "requestExport": {"202"},
}


async def test_every_answer_with_a_location_documents_it_and_no_other(api):
    schema = (await api.client.get("/schema/openapi.json")).json()
    documented = {}
    for operations in schema["paths"].values():
        for operation in operations.values():
            statuses = {
                status
                for status, response in operation["responses"].items()
                if "Location" in response.get("headers", {})
            }
            if statuses:
                documented[operation["operationId"]] = statuses
    assert documented == LOCATED


async def test_every_answer_that_may_be_a_replay_documents_idempotent_replayed(api):
    schema = (await api.client.get("/schema/openapi.json")).json()
    documented = {
        operation["operationId"]: {
            status
            for status, response in operation["responses"].items()
            if "Idempotent-Replayed" in response.get("headers", {})
        }
        for operations in schema["paths"].values()
        for operation in operations.values()
    }
    assert {name: statuses for name, statuses in documented.items() if statuses} == {
        "makePayment": {"201", "202", "402"},
        "refundPayment": {"200", "201", "202"},
    }
