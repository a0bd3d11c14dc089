"""Who is acting. Every use case takes an :class:`Actor` and checks it against the policy."""

from __future__ import annotations

from uuid import UUID

import msgspec

from debtflow_core.domain.user import Role


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """The caller of a use case: a signed-in user, or the platform acting inside one agency.

    ``user_id`` is ``None`` for the platform (operator commands, scheduled tasks); it acts
    with the agency-admin role but never outside ``agency_id``. ``session_id`` names the
    sign-in session of a user who came with a token.
    """

    user_id: UUID | None
    agency_id: UUID
    role: Role
    session_id: UUID | None = None

    @classmethod
    def system(cls, agency_id: UUID) -> Actor:
        return cls(user_id=None, agency_id=agency_id, role=Role.AGENCY_ADMIN)
