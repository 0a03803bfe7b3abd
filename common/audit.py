"""The audit trail: who changed which money, plan or entitlement, and how."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import msgspec

from common.clock import utcnow
from common.ids import new_id
from common.logging import request_id_var
from common.pagination import keyset_page
from common.tables import AuditLog

actor_var: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="system")


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Attribute the writes inside the block to ``actor`` (a job, a Stripe event, a CLI)."""
    token = actor_var.set(actor)
    try:
        yield
    finally:
        actor_var.reset(token)


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return msgspec.json.decode(msgspec.json.encode(value))


async def record(
    action: str,
    entity_type: str,
    entity_id: str,
    *,
    before: Mapping[str, Any] | msgspec.Struct | None = None,
    after: Mapping[str, Any] | msgspec.Struct | None = None,
) -> str:
    """Append one audit row (inside the caller's transaction, if any)."""
    row_id = new_id("aud")
    await AuditLog.insert(
        AuditLog(
            id=row_id,
            at=utcnow(),
            actor=actor_var.get(),
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=_jsonable(before),
            after=_jsonable(after),
            request_id=request_id_var.get(),
        )
    )
    return row_id


class AuditEntry(msgspec.Struct, frozen=True):
    id: str
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: Any
    after: Any
    request_id: str | None


async def list_entries(
    *,
    limit: int,
    starting_after: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
) -> tuple[list[AuditEntry], bool]:
    """Who changed what, newest first."""
    query = AuditLog.objects().output(load_json=True)
    if entity_id:
        query = query.where(AuditLog.entity_id == entity_id)
    if action:
        query = query.where(AuditLog.action == action)
    rows, more = await keyset_page(query, AuditLog.id, limit=limit, starting_after=starting_after)
    entries = [
        AuditEntry(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            entity_type=r.entity_type,
            entity_id=r.entity_id,
            before=r.before,
            after=r.after,
            request_id=r.request_id,
        )
        for r in rows
    ]
    return entries, more
