"""Accounts still assigned to a user who is deactivated or no longer a collector are
unassigned, each audited as ``account.unassigned`` by the platform, as a live release
writes it. A collector deactivated or given another role now gives up their accounts in
the same transaction; those who left before that kept them, neither theirs to work nor
in the unassigned queue.

On PostgreSQL the entries go to this month's audit log partition, created first if it is
missing, as ``debtflow migrate`` and the daily task create them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from uuid import UUID

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

_users = sa.table(
    "users",
    sa.column("id", sa.Uuid),
    sa.column("role", sa.String),
    sa.column("active", sa.Boolean),
)
_accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid),
    sa.column("agency_id", sa.Uuid),
    sa.column("assigned_collector_id", sa.Uuid),
    sa.column("updated_at", _TIMESTAMP),
)
_audit_log = sa.table(
    "audit_log",
    sa.column("id", sa.Uuid),
    sa.column("agency_id", sa.Uuid),
    sa.column("actor_id", sa.Uuid),
    sa.column("action", sa.Text),
    sa.column("entity_type", sa.Text),
    sa.column("entity_id", sa.Uuid),
    sa.column("before", _JSON),
    sa.column("after", _JSON),
    sa.column("occurred_at", _TIMESTAMP),
)

# Users who may hold accounts are active collectors (User.assignable).
_DEPARTED = sa.select(_users.c.id).where(sa.or_(~_users.c.active, _users.c.role != "collector"))


def _new_id() -> UUID:
    """A time-ordered UUIDv7, as the application makes its ids (debtflow_core.ids), which a
    revision does not import: it must keep doing what it did when it was written."""
    random = int.from_bytes(os.urandom(10))
    return UUID(
        int=((time.time_ns() // 1_000_000) & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | (random >> 68) << 64
        | 0b10 << 62
        | random & ((1 << 62) - 1)
    )


def upgrade() -> None:
    connection = op.get_bind()
    # Locked until the migration commits, so that none is assigned anew in between.
    held = connection.execute(
        sa.select(_accounts.c.id, _accounts.c.agency_id, _accounts.c.assigned_collector_id)
        .where(_accounts.c.assigned_collector_id.in_(_DEPARTED))
        .order_by(_accounts.c.id)
        .with_for_update()
    ).all()
    if not held:
        return
    now = datetime.now(UTC)
    if connection.dialect.name == "postgresql":
        # The database's clock, which also picks the month of the partition created below.
        now = connection.execute(sa.text("SELECT now()")).scalar_one()
    connection.execute(
        sa.update(_accounts)
        .where(_accounts.c.assigned_collector_id.in_(_DEPARTED))
        .values(assigned_collector_id=None, updated_at=now)
    )
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT debtflow_create_audit_partitions(0)"))
    connection.execute(
        sa.insert(_audit_log),
        [
            {
                "id": _new_id(),
                "agency_id": account.agency_id,
                "actor_id": None,
                "action": "account.unassigned",
                "entity_type": "account",
                "entity_id": account.id,
                "before": {"assigned_collector_id": str(account.assigned_collector_id)},
                "after": {"assigned_collector_id": None},
                "occurred_at": now,
            }
            for account in held
        ],
    )


def downgrade() -> None:
    """Nothing to undo: giving the accounts back would assign them again to users who
    cannot work them, and the audit log keeps what happened, as it keeps every release."""
