"""Initial schema: agencies, users, debtors, accounts, activities, audit log, processors,
sign-in sessions and refresh tokens.

On PostgreSQL the audit log is range-partitioned by month with a default partition, and
``debtflow_create_audit_partitions(months_ahead)`` creates the coming months' partitions.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

_CREATE_AUDIT_PARTITIONS = """
CREATE FUNCTION debtflow_create_audit_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month_start date;
    partition_name text;
    lower_bound timestamptz;
    upper_bound timestamptz;
    created integer := 0;
BEGIN
    -- Two callers at once would both see a partition missing and both create it.
    PERFORM pg_advisory_xact_lock(hashtext('debtflow_create_audit_partitions'));
    FOR month_offset IN 0..months_ahead LOOP
        month_start := (this_month + make_interval(months => month_offset))::date;
        partition_name := 'audit_log_' || to_char(month_start, '"y"YYYY"m"MM');
        CONTINUE WHEN to_regclass(partition_name) IS NOT NULL;
        lower_bound := month_start::timestamp AT TIME ZONE 'UTC';
        upper_bound := (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        -- Entries written before their month had a partition wait in the default one;
        -- attaching the partition fails unless they move into it first.
        EXECUTE format('CREATE TABLE %I (LIKE audit_log INCLUDING DEFAULTS)', partition_name);
        EXECUTE format(
            'WITH moved AS (DELETE FROM audit_log_default'
            ' WHERE occurred_at >= %L AND occurred_at < %L RETURNING *)'
            ' INSERT INTO %I SELECT * FROM moved',
            lower_bound, upper_bound, partition_name
        );
        EXECUTE format(
            'ALTER TABLE audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
            partition_name, lower_bound, upper_bound
        );
        created := created + 1;
    END LOOP;
    RETURN created;
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.UniqueConstraint("slug", name="uq_agencies_slug"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("ix_users_agency_email", "users", ["agency_id", "email"])
    op.create_table(
        "debtors",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("external_id", sa.Text, nullable=True),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("date_of_birth", sa.Date, nullable=True),
        sa.Column("phones", _JSON, nullable=False),
        sa.Column("emails", _JSON, nullable=False),
        sa.Column("address", _JSON, nullable=True),
        sa.Column("contact_preferences", _JSON, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.UniqueConstraint("agency_id", "external_id", name="uq_debtors_agency_external_id"),
    )
    op.create_index("ix_debtors_agency_created", "debtors", ["agency_id", "created_at", "id"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("debtor_id", sa.Uuid, sa.ForeignKey("debtors.id"), nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("original_creditor", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("placed_balance", sa.BigInteger, nullable=False),
        sa.Column("current_balance", sa.BigInteger, nullable=False),
        sa.Column("charge_off_date", sa.Date, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("assigned_collector_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("placed_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.UniqueConstraint("agency_id", "external_id", name="uq_accounts_agency_external_id"),
    )
    op.create_index("ix_accounts_agency_placed", "accounts", ["agency_id", "placed_at", "id"])
    op.create_index(
        "ix_accounts_agency_status_placed",
        "accounts",
        ["agency_id", "status", "placed_at", "id"],
    )
    op.create_index(
        "ix_accounts_agency_collector_status_placed",
        "accounts",
        ["agency_id", "assigned_collector_id", "status", "placed_at", "id"],
    )
    op.create_index(
        "ix_accounts_agency_balance", "accounts", ["agency_id", "current_balance", "id"]
    )
    op.create_index("ix_accounts_agency_debtor", "accounts", ["agency_id", "debtor_id"])
    op.create_table(
        "activities",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("promise", _JSON, nullable=True),
        sa.Column("actor_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("occurred_at", _TIMESTAMP, nullable=False),
    )
    op.create_index(
        "ix_activities_account_occurred", "activities", ["account_id", "occurred_at", "id"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("agency_id", sa.Uuid, nullable=False),
        sa.Column("actor_id", sa.Uuid, nullable=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Uuid, nullable=False),
        sa.Column("before", _JSON, nullable=False),
        sa.Column("after", _JSON, nullable=False),
        sa.Column("occurred_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", "occurred_at"),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    op.create_index("ix_audit_log_agency_occurred", "audit_log", ["agency_id", "occurred_at", "id"])
    op.create_index(
        "ix_audit_log_agency_entity",
        "audit_log",
        ["agency_id", "entity_type", "entity_id", "occurred_at"],
    )
    op.create_index(
        "ix_audit_log_agency_actor", "audit_log", ["agency_id", "actor_id", "occurred_at"]
    )
    op.create_table(
        "payment_processors",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
    )
    op.create_index("ix_payment_processors_agency", "payment_processors", ["agency_id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("revoked_at", _TIMESTAMP, nullable=True),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("session_id", sa.Uuid, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.Column("used_at", _TIMESTAMP, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT")
        op.execute(_CREATE_AUDIT_PARTITIONS)
        op.execute("SELECT debtflow_create_audit_partitions(3)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION debtflow_create_audit_partitions(integer)")
    for table in (
        "refresh_tokens",
        "sessions",
        "payment_processors",
        "audit_log",
        "activities",
        "accounts",
        "debtors",
        "users",
        "agencies",
    ):
        op.drop_table(table)
