"""Audit entries: every state change is written with its entry, in the same transaction."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.ids import new_id

# Never copied into the audit log, whatever the entity.
_SECRET_FIELDS = frozenset({"password_hash"})


def _fields(entity: msgspec.Struct | None, skip: Collection[str]) -> dict[str, Any]:
    if entity is None:
        return {}
    data = msgspec.to_builtins(entity)
    return {k: v for k, v in data.items() if k not in skip and k not in _SECRET_FIELDS}


def audit_entry(
    actor: Actor,
    action: str,
    *,
    entity_id: UUID,
    before: msgspec.Struct | None,
    after: msgspec.Struct | None,
    at: datetime,
) -> AuditEntry:
    """An entry for ``action`` (``"<entity type>.<verb>"``) holding only the changed fields.

    ``before`` is ``None`` for a creation, ``after`` for a deletion.
    """
    old = _fields(before, skip=("updated_at",))
    new = _fields(after, skip=("updated_at",))
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    return AuditEntry(
        id=new_id(),
        agency_id=actor.agency_id,
        actor_id=actor.user_id,
        action=action,
        entity_type=action.partition(".")[0],
        entity_id=entity_id,
        before={k: old[k] for k in sorted(changed) if k in old},
        after={k: new[k] for k in sorted(changed) if k in new},
        occurred_at=at,
    )
