"""Sign-in over HTTP: tokens, refresh rotation, reuse detection, logout, deactivation."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import jwt

from debtflow_core.use_cases.users import DeactivateUser
from tests.integration.api.conftest import JWT_SECRET, PASSWORD

PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_sign_in_gives_a_fifteen_minute_jwt_with_the_documented_claims(api, alpha):
    pair = await api.sign_in("collector@alpha.example")
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    assert pair["refresh_expires_in"] == 14 * 24 * 3600
    claims = jwt.decode(
        pair["access_token"], JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert set(claims) >= {"sub", "agency", "role", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 900
    assert claims["role"] == "collector"

    me = await api.client.get("/v1/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "collector@alpha.example"
    assert "password_hash" not in me.json()


async def test_wrong_credentials_are_a_401_problem(api, alpha):
    for email, password in [("collector@alpha.example", "wrong"), ("nobody@x.example", PASSWORD)]:
        response = await api.client.post(
            "/v1/auth/token", json={"email": email, "password": password}
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["detail"] == "the email or password is wrong"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expired_tampered_unsigned_and_foreign_tokens_are_401(api, alpha):
    token = (await api.sign_in("admin@alpha.example"))["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "agency_admin"
    claims["sub"] = str(alpha.id_of("readonly"))
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    bad = {
        "tampered": f"{header}.{forged_payload}.{signature}",
        "alg none": f"{none_header}.{forged_payload}.",
        "wrong key": jwt.encode(claims, "another-secret-of-a-decent-length-1234567", "HS256"),
        "garbage": "not.a.token",
    }
    for reason, candidate in bad.items():
        response = await api.client.get("/v1/me", headers=bearer(candidate))
        assert response.status_code == 401, reason
    assert (await api.client.get("/v1/me")).status_code == 401
    assert (await api.client.get("/v1/me", headers={"Authorization": token})).status_code == 401

    assert (await api.client.get("/v1/me", headers=bearer(token))).status_code == 200
    api.clock.advance(timedelta(minutes=15))
    expired = await api.client.get("/v1/me", headers=bearer(token))
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(api, alpha):
    first = await api.sign_in("collector@alpha.example")
    rotated = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        await api.client.get("/v1/me", headers=bearer(second["access_token"]))
    ).status_code == 200

    reused = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    assert "used before" in reused.json()["detail"]
    for token in (first["access_token"], second["access_token"]):
        assert (await api.client.get("/v1/me", headers=bearer(token))).status_code == 401
    after = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.status_code == 401


async def test_logout_revokes_access_and_refresh_tokens(api, alpha):
    pair = await api.sign_in("readonly@alpha.example")
    out = await api.client.post("/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert out.status_code == 204
    assert (await api.client.get("/v1/me", headers=bearer(pair["access_token"]))).status_code == 401
    refresh = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refresh.status_code == 401


async def test_signing_in_and_out_and_a_revocation_for_reuse_are_audited(api, alpha):
    admin = alpha.headers["admin"]

    async def sessions_trail() -> list[str]:
        page = await api.client.get(
            "/v1/audit-log", headers=admin, params={"entity_type": "session", "limit": 200}
        )
        return [entry["action"] for entry in page.json()["items"]]

    before = await sessions_trail()  # the tenant's own sign-ins
    assert set(before) == {"session.created"}
    pair = await api.sign_in("collector@alpha.example")
    body = {"refresh_token": pair["refresh_token"]}
    assert (await api.client.post("/v1/auth/refresh", json=body)).status_code == 200
    assert (await api.client.post("/v1/auth/refresh", json=body)).status_code == 401
    other = await api.sign_in("readonly@alpha.example")
    out = await api.client.post("/v1/auth/logout", headers=bearer(other["access_token"]))
    assert out.status_code == 204

    trail = await sessions_trail()
    assert trail[: len(trail) - len(before)] == [
        "session.ended",
        "session.created",
        "session.revoked",
        "session.created",
    ]


async def test_a_deactivated_users_tokens_stop_working_at_once(api, alpha):
    pair = await api.sign_in("colleague@alpha.example")
    headers = bearer(pair["access_token"])
    assert (await api.client.get("/v1/accounts", headers=headers)).status_code == 200
    await api.run(DeactivateUser, alpha.admin, alpha.id_of("colleague"))
    assert (await api.client.get("/v1/accounts", headers=headers)).status_code == 401
    refresh = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refresh.status_code == 401
    login = await api.client.post(
        "/v1/auth/token", json={"email": "colleague@alpha.example", "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_an_anonymous_request_is_a_401_whatever_its_body(api, alpha):
    for body in (b"{", b'{"debtor_id": 1}'):
        response = await api.client.post(
            "/v1/accounts", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 401, body


async def test_sign_in_fields_have_bounded_lengths(api, alpha):
    too_long = [
        {"email": "a" * 250 + "@x.example", "password": PASSWORD},
        {"email": "admin@alpha.example", "password": "p" * 1025},
    ]
    for body in too_long:
        response = await api.client.post("/v1/auth/token", json=body)
        assert response.status_code == 400, response.text
    refresh = await api.client.post("/v1/auth/refresh", json={"refresh_token": "r" * 257})
    assert refresh.status_code == 400


async def test_two_refreshes_at_once_with_one_token_revoke_the_session(api, alpha):
    pair = await api.sign_in("readonly@alpha.example")
    body = {"refresh_token": pair["refresh_token"]}

    answers = await asyncio.gather(
        api.client.post("/v1/auth/refresh", json=body),
        api.client.post("/v1/auth/refresh", json=body),
    )

    assert sorted(a.status_code for a in answers) == [200, 401]
    [won] = [a.json() for a in answers if a.status_code == 200]
    me = await api.client.get("/v1/me", headers=bearer(won["access_token"]))
    assert me.status_code == 401  # the reuse revoked the whole session
    again = await api.client.post("/v1/auth/refresh", json={"refresh_token": won["refresh_token"]})
    assert again.status_code == 401


async def test_sign_in_attempts_are_rate_limited_with_retry_after(api, alpha):
    statuses = []
    for _ in range(10):
        response = await api.client.post(
            "/v1/auth/token", json={"email": "admin@alpha.example", "password": "wrong guess"}
        )
        statuses.append(response.status_code)
    # Signing in the tenant's users made the first attempt of each email.
    assert statuses[:9] == [401] * 9
    assert statuses[9] == 429
    assert 0 < int(response.headers["retry-after"]) <= 900
    assert response.headers["content-type"] == PROBLEM
    # The right password is refused too until the window ends.
    blocked = await api.client.post(
        "/v1/auth/token", json={"email": "admin@alpha.example", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    api.clock.advance(timedelta(minutes=15))
    assert (await api.sign_in("admin@alpha.example"))["access_token"]
