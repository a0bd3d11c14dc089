"""The relational schema in SQLAlchemy Core. Alembic migrations create it; this mirrors them.

Column names are the entity field names. Money is a whole number of minor units; every
timestamp is stored and returned as an aware UTC datetime; nested value objects are JSON.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime, stored in UTC and read back as UTC on every database.

    SQLite has no time zones: without this it would return naive datetimes, and a value
    in another zone would be stored at its local wall time.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: DebtFlow stores aware UTC times")
        utc = value.astimezone(UTC)
        return utc if dialect.name == "postgresql" else utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

# Partitions of audit_log that the database creates on its own (PostgreSQL only).
_AUDIT_PARTITION = re.compile(r"audit_log_(default|y\d{4}m\d{2})")

metadata = sa.MetaData()

agencies = sa.Table(
    "agencies",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("slug", sa.String(63), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("allow_overpayment", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("slug", name="uq_agencies_slug"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("email", name="uq_users_email"),
    sa.Index("ix_users_agency_email", "agency_id", "email"),
)

debtors = sa.Table(
    "debtors",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("external_id", sa.Text, nullable=True),
    sa.Column("first_name", sa.Text, nullable=False),
    sa.Column("last_name", sa.Text, nullable=False),
    sa.Column("date_of_birth", sa.Date, nullable=True),
    sa.Column("phones", JSON, nullable=False),
    sa.Column("emails", JSON, nullable=False),
    sa.Column("address", JSON, nullable=True),
    sa.Column("contact_preferences", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("agency_id", "external_id", name="uq_debtors_agency_external_id"),
    sa.Index("ix_debtors_agency_created", "agency_id", "created_at", "id"),
)

accounts = sa.Table(
    "accounts",
    metadata,
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
    sa.Column("placed_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("first_delinquency_date", sa.Date, nullable=True),
    sa.Column("itemization_date", sa.Date, nullable=True),
    sa.Column("last_payment_date", sa.Date, nullable=True),
    # The import run and file line that last wrote the account: its provenance, and how an
    # import finds an account named twice in one file.
    sa.Column("import_run_id", sa.Uuid, nullable=True),
    sa.Column("import_line", sa.Integer, nullable=True),
    # The import run that created the account (None for the API's): the only run that may
    # change its currency, as a later line of its file.
    sa.Column("placed_by_run_id", sa.Uuid, nullable=True),
    sa.UniqueConstraint("agency_id", "external_id", name="uq_accounts_agency_external_id"),
    sa.Index("ix_accounts_agency_placed", "agency_id", "placed_at", "id"),
    sa.Index("ix_accounts_agency_status_placed", "agency_id", "status", "placed_at", "id"),
    sa.Index(
        "ix_accounts_agency_collector_status_placed",
        "agency_id",
        "assigned_collector_id",
        "status",
        "placed_at",
        "id",
    ),
    sa.Index("ix_accounts_agency_balance", "agency_id", "current_balance", "id"),
    sa.Index("ix_accounts_agency_debtor", "agency_id", "debtor_id"),
)

activities = sa.Table(
    "activities",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("promise", JSON, nullable=True),
    sa.Column("actor_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Index("ix_activities_account_occurred", "account_id", "occurred_at", "id"),
)

# The partition key must be part of the primary key. No foreign keys: the log is history,
# and must neither hold on to what it mentions nor refuse an entry because of it.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Uuid, nullable=False),
    sa.Column("agency_id", sa.Uuid, nullable=False),
    sa.Column("actor_id", sa.Uuid, nullable=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("entity_type", sa.Text, nullable=False),
    sa.Column("entity_id", sa.Uuid, nullable=False),
    sa.Column("before", JSON, nullable=False),
    sa.Column("after", JSON, nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("id", "occurred_at"),
    sa.Index("ix_audit_log_agency_occurred", "agency_id", "occurred_at", "id"),
    sa.Index("ix_audit_log_agency_entity", "agency_id", "entity_type", "entity_id", "occurred_at"),
    sa.Index("ix_audit_log_agency_actor", "agency_id", "actor_id", "occurred_at"),
    postgresql_partition_by="RANGE (occurred_at)",
)

payment_processors = sa.Table(
    "payment_processors",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_payment_processors_agency", "agency_id"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("session_id", sa.Uuid, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    # The sessions purge deletes sessions: each delete checks its tokens by this key.
    sa.Index("ix_refresh_tokens_session", "session_id"),
)


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Alembic's filter of reflected names: audit_log's partitions are not in ``metadata``.

    Pass it as ``include_name`` when comparing the database with ``metadata``.
    """
    return not (type_ == "table" and name is not None and _AUDIT_PARTITION.fullmatch(name))


payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("processor_id", sa.Uuid, sa.ForeignKey("payment_processors.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("payment_method", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("gateway_reference", sa.String(255), nullable=True),
    sa.Column("failure_code", sa.String(64), nullable=True),
    sa.Column("failure_message", sa.Text, nullable=True),
    sa.Column("refunded_amount", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.Uuid, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_payments_agency_created", "agency_id", "created_at", "id"),
    sa.Index("ix_payments_account_created", "account_id", "created_at", "id"),
    sa.Index("ix_payments_status_created", "status", "created_at"),
    sa.Index("ix_payments_gateway_reference", "gateway_reference"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("payment_id", sa.Uuid, sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("gateway_reference", sa.String(255), nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("created_by", sa.Uuid, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    sa.Column("failed_at", UTCDateTime, nullable=True),
    sa.Index("ix_refunds_payment_created", "payment_id", "created_at", "id"),
    sa.Index(
        "ix_refunds_pending_created",
        "created_at",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    ),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("response", JSON, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_idempotency_keys_expires", "expires_at"),
)

gateway_events = sa.Table(
    "gateway_events",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("payment_id", sa.Uuid, nullable=True),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.Column("decline_code", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("amount_refunded", sa.BigInteger, nullable=True),
    sa.Column("refund_key", sa.Text, nullable=True),
    sa.Column("payment_reference", sa.String(255), nullable=True),
    sa.Column("refund_amount", sa.BigInteger, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Index("ix_gateway_events_payment", "payment_id"),
)

UNAPPLIED_EVENT = sa.text("processed_at IS NULL")
"""The events the sweep hands the workers again, and the predicate of the partial index
that serves it (written out, as :data:`UNFINISHED_UPLOAD` is)."""

sa.Index(
    "ix_gateway_events_unapplied",
    gateway_events.c.received_at,
    gateway_events.c.id,
    postgresql_where=UNAPPLIED_EVENT,
    sqlite_where=UNAPPLIED_EVENT,
)

import_runs = sa.Table(
    "import_runs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("file_source_id", sa.Uuid, nullable=True),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("storage_key", sa.Text, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_created", sa.BigInteger, nullable=False),
    sa.Column("rows_updated", sa.BigInteger, nullable=False),
    sa.Column("rows_failed", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("lines_done", sa.BigInteger, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("ignored_columns", JSON, nullable=False),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("delimiter", sa.String(1), nullable=False, server_default=","),
    sa.Column("column_mapping", JSON, nullable=False, server_default="{}"),
    sa.Column("progressed_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("agency_id", "sha256", name="uq_import_runs_agency_sha256"),
    sa.Index("ix_import_runs_agency_created", "agency_id", "created_at", "id"),
)

UNFINISHED_UPLOAD = sa.text("file_source_id IS NULL AND status IN ('queued', 'running')")
"""The runs that the stalled-imports sweep looks through, and the predicate of the partial
index that serves it: written out, so that a query with the same text uses the index on
both databases (neither plans a partial index for a condition it cannot match up)."""

sa.Index(
    "ix_import_runs_unfinished_uploads",
    import_runs.c.created_at,
    import_runs.c.id,
    postgresql_where=UNFINISHED_UPLOAD,
    sqlite_where=UNFINISHED_UPLOAD,
)

import_row_errors = sa.Table(
    "import_row_errors",
    metadata,
    sa.Column(
        "run_id", sa.Uuid, sa.ForeignKey("import_runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("line", sa.BigInteger, primary_key=True),
    sa.Column("column", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=True),
)

file_sources = sa.Table(
    "file_sources",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("host", sa.Text, nullable=True),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("username", sa.Text, nullable=True),
    sa.Column("secret_env", sa.Text, nullable=True),
    sa.Column("host_key", sa.Text, nullable=True),
    sa.Column("directory", sa.Text, nullable=False),
    sa.Column("pattern", sa.Text, nullable=False),
    sa.Column("archive_directory", sa.Text, nullable=True),
    sa.Column("delimiter", sa.String(1), nullable=False),
    sa.Column("column_mapping", JSON, nullable=False),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("agency_id", "name", name="uq_file_sources_agency_name"),
)

exports = sa.Table(
    "exports",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("parameters", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("storage_key", sa.Text, nullable=False),
    sa.Column("requested_by", sa.Uuid, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("rows", sa.BigInteger, nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Index("ix_exports_agency_created", "agency_id", "created_at", "id"),
    sa.Index("ix_exports_created", "created_at"),
)

nightly_exports = sa.Table(
    "nightly_exports",
    metadata,
    sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), primary_key=True),
    sa.Column("kinds", JSON, nullable=False),
)
