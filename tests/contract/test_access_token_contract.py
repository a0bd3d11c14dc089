"""AccessTokenCodec: the JWT codec and the in-memory one keep the same promises."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from debtflow_adapters.memory import InMemoryAccessTokens
from debtflow_adapters.security.jwt import JwtAccessTokenCodec
from debtflow_core.errors import Unauthenticated
from debtflow_core.ports.access_tokens import AccessClaims, AccessTokenCodec

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECRET = "a-test-secret-that-is-long-enough-for-hs256-and-even-for-hs512-keys"


@pytest.fixture(params=["jwt", "memory"])
def codec(request) -> AccessTokenCodec:
    return JwtAccessTokenCodec(SECRET) if request.param == "jwt" else InMemoryAccessTokens()


def claims(**overrides) -> AccessClaims:
    fields = dict(
        sub=uuid.uuid4(),
        agency=uuid.uuid4(),
        role="collector",
        sid=uuid.uuid4(),
        jti=uuid.uuid4(),
        iat=NOW,
        exp=NOW + timedelta(minutes=15),
    )
    return AccessClaims(**{**fields, **overrides})


def test_a_token_verifies_to_its_claims_until_it_expires(codec):
    issued = claims()
    token = codec.issue(issued)
    assert codec.verify(token, NOW + timedelta(minutes=14, seconds=59)) == issued
    with pytest.raises(Unauthenticated, match="expired"):
        codec.verify(token, NOW + timedelta(minutes=15))


def test_garbage_and_tampered_tokens_are_refused(codec):
    token = codec.issue(claims())
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in ("", "garbage", "a.b.c", flipped, token + "x"):
        with pytest.raises(Unauthenticated):
            codec.verify(bad, NOW)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_the_jwt_codec_refuses_alg_none_other_keys_and_missing_claims():
    codec = JwtAccessTokenCodec(SECRET)
    payload = {
        "sub": str(uuid.uuid4()),
        "agency": str(uuid.uuid4()),
        "role": "agency_admin",
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 900,
    }
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
    other_key = jwt.encode(payload, "another-secret-that-is-also-long-enough", algorithm="HS256")
    other_alg = jwt.encode(payload, SECRET, algorithm="HS512")
    incomplete = jwt.encode({k: v for k, v in payload.items() if k != "sid"}, SECRET)
    for token in (unsigned, other_key, other_alg, incomplete):
        with pytest.raises(Unauthenticated):
            codec.verify(token, NOW)
    assert codec.verify(jwt.encode(payload, SECRET, algorithm="HS256"), NOW).role == "agency_admin"


def test_the_jwt_codec_wants_a_long_secret():
    with pytest.raises(ValueError, match="32 bytes"):
        JwtAccessTokenCodec("short")


def test_the_jwt_codec_checks_a_token_once_and_its_expiry_on_every_call(monkeypatch):
    codec = JwtAccessTokenCodec(SECRET)
    decoded = []
    decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: decoded.append(a[0]) or decode(*a, **kw))
    token = codec.issue(claims())
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    codec.verify(token, NOW)
    codec.verify(token, NOW + timedelta(minutes=1))
    with pytest.raises(Unauthenticated, match="expired"):
        codec.verify(token, NOW + timedelta(minutes=15))
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="not valid"):
            codec.verify(flipped, NOW)
    assert decoded == [token, flipped, flipped]
