"""Signing in: credentials for tokens, refresh-token rotation, logout, token checks.

Access tokens live 15 minutes; refresh tokens 14 days, single use, rotated on every refresh.
Presenting a refresh token that was already used means it leaked: the whole session
(every token rotated from the same login) is revoked.

A session's start and end are audited, in the transaction that makes them:
``session.created`` by the user signing in, ``session.ended`` by the user signing out, and
``session.revoked`` by the platform when a spent refresh token comes back. A rotation is not:
it changes no one's access (the session goes on, as it was), and every client rotates every
15 minutes, which would drown the agency's log in entries that tell nothing. No entry holds
a token or its hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
import uuid
from datetime import datetime, timedelta
from typing import ClassVar

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import Role, User
from debtflow_core.errors import RateLimited, Unauthenticated, ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.ports.access_tokens import AccessClaims, AccessTokenCodec
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_core.ports.rate_limiter import RateLimiter
from debtflow_core.ports.sessions import PurgedSessions
from debtflow_core.ports.unit_of_work import UnitOfWork

_REJECTED = "the email or password is wrong"
_SIGNED_OUT = "signed out"
_REUSED = "a refresh token was presented again after it had been used: it may have leaked"


class AuthPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Token lifetimes and login throttling. The defaults are the product's."""

    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=14)
    login_window: timedelta = timedelta(minutes=15)
    logins_per_email: int = 10
    logins_per_client: int = 100


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    password: str
    client: str
    """The caller's network address, for throttling."""


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    """Seconds until the access token expires."""
    refresh_expires_in: int


def _client_key(client: str) -> str:
    """The throttled client: an IPv4 address, or an IPv6 client's /64 (the block one host
    is given, and may cycle through), or the text as given when it is no address."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network((address, 64), strict=False))
    return str(address if isinstance(address, ipaddress.IPv4Address) else address.ipv4_mapped)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _signed_in(user: User, session_id: uuid.UUID) -> Actor:
    return Actor(
        user_id=user.id, agency_id=user.agency_id, role=Role(user.role), session_id=session_id
    )


class _Ending(msgspec.Struct, frozen=True, kw_only=True):
    """A session's end as its audit entry shows it: when, and why."""

    revoked_at: datetime | None = None
    reason: str | None = None


def _ended(actor: Actor, action: str, session_id: uuid.UUID, at: datetime, why: str) -> AuditEntry:
    return audit_entry(
        actor,
        action,
        entity_id=session_id,
        before=_Ending(),
        after=_Ending(revoked_at=at, reason=why),
        at=at,
    )


class _Tokens:
    def __init__(
        self, uow: UnitOfWork, codec: AccessTokenCodec, clock: Clock, policy: AuthPolicy
    ) -> None:
        self._uow = uow
        self._codec = codec
        self._clock = clock
        self._policy = policy

    async def _issue(self, user: User, session_id: uuid.UUID) -> TokenPair:
        """Mint an access token and a fresh refresh token for the session (uncommitted)."""
        now = self._clock.now()
        refresh = secrets.token_urlsafe(32)
        await self._uow.sessions.add_token(
            RefreshToken(
                id=new_id(),
                session_id=session_id,
                token_hash=_digest(refresh),
                issued_at=now,
                expires_at=now + self._policy.refresh_ttl,
                used_at=None,
            )
        )
        access = self._codec.issue(
            AccessClaims(
                sub=user.id,
                agency=user.agency_id,
                role=user.role,
                sid=session_id,
                jti=uuid.uuid4(),
                iat=now,
                exp=now + self._policy.access_ttl,
            )
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self._policy.access_ttl.total_seconds()),
            refresh_expires_in=int(self._policy.refresh_ttl.total_seconds()),
        )


class Login(_Tokens):
    """Exchange an email and password for a token pair, opening a new session.

    Attempts are throttled per email and per client address (an IPv6 client by its /64,
    which one host may hold whole), successful or not; past the limit the answer is
    RateLimited with the seconds to wait. A wrong email and a wrong password are refused
    alike, after the same work, so neither can be told apart. The password is checked in a
    worker thread, holding no database connection: a hash takes tens of milliseconds,
    which the other requests do not wait for. The new session is audited
    (``session.created``).
    """

    # A real hash per hasher type, checked when the email is unknown so that the answer
    # takes as long as for a wrong password.
    _decoys: ClassVar[dict[type, str]] = {}

    def __init__(
        self,
        uow: UnitOfWork,
        codec: AccessTokenCodec,
        clock: Clock,
        policy: AuthPolicy,
        hasher: PasswordHasher,
        limiter: RateLimiter,
    ) -> None:
        super().__init__(uow, codec, clock, policy)
        self._hasher = hasher
        self._limiter = limiter

    async def execute(self, credentials: Credentials) -> TokenPair:
        email = credentials.email.strip().lower()
        window = self._policy.login_window
        waits = [
            await self._limiter.hit(
                f"login:email:{_digest(email)}",  # a key of fixed size, and no address in it
                limit=self._policy.logins_per_email,
                window=window,
            ),
            await self._limiter.hit(
                f"login:client:{_client_key(credentials.client)}",
                limit=self._policy.logins_per_client,
                window=window,
            ),
        ]
        if wait := max(waits):
            raise RateLimited("too many sign-in attempts", retry_after_seconds=wait)
        async with self._uow as uow:
            # No email has a NUL character, and PostgreSQL can't even be asked about one.
            user = None if "\x00" in email else await uow.users.get_by_email(email)
        password_hash = user.password_hash if user else await self._decoy()
        verified = await asyncio.to_thread(self._hasher.verify, password_hash, credentials.password)
        if not verified or user is None or not user.active:
            raise Unauthenticated(_REJECTED)
        async with self._uow as uow:
            session = Session(
                id=new_id(),
                agency_id=user.agency_id,
                user_id=user.id,
                created_at=self._clock.now(),
                revoked_at=None,
            )
            await uow.sessions.add(session)
            pair = await self._issue(user, session.id)
            await uow.audit_log.add(
                audit_entry(
                    _signed_in(user, session.id),
                    "session.created",
                    entity_id=session.id,
                    before=None,
                    after=session,
                    at=session.created_at,
                )
            )
            await uow.commit()
        return pair

    async def _decoy(self) -> str:
        kind = type(self._hasher)
        if kind not in self._decoys:
            decoy = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(16))
            self._decoys[kind] = decoy
        return self._decoys[kind]


class Refresh(_Tokens):
    """Rotate a refresh token: the presented one is spent, a new pair is returned.

    An unknown, expired or revoked token is Unauthenticated. A token that was spent already
    revokes its whole session before being refused, audited as ``session.revoked`` by the
    platform (whoever presented the token is not known to be the user).
    """

    async def execute(self, refresh_token: str) -> TokenPair:
        now = self._clock.now()
        async with self._uow as uow:
            token = await uow.sessions.get_token(_digest(refresh_token))
            if token is None:
                raise Unauthenticated("the refresh token is not valid")
            session = await uow.sessions.get(token.session_id)
            if session is None or session.revoked_at is not None or token.expires_at <= now:
                raise Unauthenticated("the refresh token has expired or was revoked")
            if not await uow.sessions.use_token(token.id, now):
                if await uow.sessions.revoke(session.id, now):
                    system = Actor.system(session.agency_id)
                    await uow.audit_log.add(
                        _ended(system, "session.revoked", session.id, now, _REUSED)
                    )
                await uow.commit()
                raise Unauthenticated("the refresh token was used before; the session is revoked")
            user = await uow.users.get(session.user_id)
            if user is None or not user.active:
                raise Unauthenticated("the user is deactivated")
            pair = await self._issue(user, session.id)
            await uow.commit()
        return pair


class Logout:
    """End the actor's session: its access and refresh tokens stop working at once.
    Audited as ``session.ended``, unless the session had ended already."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, actor: Actor) -> None:
        if actor.session_id is None:
            raise ValidationFailed("only a signed-in user has a session to end")
        now = self._clock.now()
        async with self._uow as uow:
            if await uow.sessions.revoke(actor.session_id, now):
                await uow.audit_log.add(
                    _ended(actor, "session.ended", actor.session_id, now, _SIGNED_OUT)
                )
            await uow.commit()


class Authenticate:
    """Turn a bearer access token into the Actor it speaks for.

    The token must verify and be unexpired, its session unrevoked and its user still
    active: deactivating a user or ending a session takes effect on the next request.
    The role comes from the user as stored now, not from the token.
    """

    def __init__(self, uow: UnitOfWork, codec: AccessTokenCodec, clock: Clock) -> None:
        self._uow = uow
        self._codec = codec
        self._clock = clock

    async def execute(self, token: str) -> Actor:
        claims = self._codec.verify(token, self._clock.now())
        async with self._uow as uow:
            found = await uow.sessions.get_with_user(claims.sid)
        if found is None:
            raise Unauthenticated("the session has ended")
        session, user = found
        if session.revoked_at is not None or session.user_id != claims.sub:
            raise Unauthenticated("the session has ended")
        if not user.active:
            raise Unauthenticated("the user is deactivated")
        return _signed_in(user, session.id)


class PurgeSessions:
    """Delete the sign-in sessions that can no longer be used, and the refresh tokens that
    have expired or whose session was revoked.

    A refresh token is deleted once it has expired, and every token of a revoked session
    at once; then each session left without a token goes too. A scheduled platform task,
    idempotent; returns what it removed.

    Reuse detection keeps working: it needs a *used* token to be found while it could still
    be presented, and a used token is kept until it expires (14 days after it was issued).
    An expired token is refused as expired without revoking anything, so once deleted it is
    refused as unknown: the same 401. A revoked session refuses all its tokens and the
    access tokens naming it, which a deleted session does too (the token is unknown, the
    session not found), so nothing is gained by keeping revoked sessions. Access tokens
    (15 minutes) die long before the refresh tokens of their session, so a session
    without an unexpired refresh token has no usable access token either.
    """

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self) -> PurgedSessions:
        async with self._uow as uow:
            purged = await uow.sessions.purge_ended(self._clock.now())
            await uow.commit()
        return purged
