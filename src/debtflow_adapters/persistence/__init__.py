"""Relational persistence with SQLAlchemy Core: PostgreSQL in production, SQLite embedded.

Alembic owns the schema (:func:`upgrade`); :class:`SqlUnitOfWork` implements the core's
unit of work over an engine from :func:`create_engine`.
"""

from debtflow_adapters.persistence.audit_partitions import (
    SqlAuditPartitions,
    create_audit_partitions,
)
from debtflow_adapters.persistence.database import create_engine, normalize_url
from debtflow_adapters.persistence.migrate import (
    SchemaRevisions,
    alembic_config,
    downgrade,
    upgrade,
)
from debtflow_adapters.persistence.unit_of_work import SqlUnitOfWork

__all__ = [
    "SchemaRevisions",
    "SqlAuditPartitions",
    "SqlUnitOfWork",
    "alembic_config",
    "create_audit_partitions",
    "create_engine",
    "downgrade",
    "normalize_url",
    "upgrade",
]
