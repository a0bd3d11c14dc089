"""Relational persistence with SQLAlchemy Core: PostgreSQL in production, SQLite embedded.

Alembic owns the schema (:func:`debtflow_adapters.persistence.migrate.upgrade`, imported
from its module: only the commands that migrate need Alembic, which the API and the worker
would otherwise load in every process); :class:`SqlUnitOfWork` implements the core's unit
of work over an engine from :func:`create_engine`.
"""

from debtflow_adapters.persistence.audit_partitions import (
    SqlAuditPartitions,
    create_audit_partitions,
)
from debtflow_adapters.persistence.database import create_engine, normalize_url
from debtflow_adapters.persistence.unit_of_work import SqlUnitOfWork

__all__ = [
    "SqlAuditPartitions",
    "SqlUnitOfWork",
    "create_audit_partitions",
    "create_engine",
    "normalize_url",
]
