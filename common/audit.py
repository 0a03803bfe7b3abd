"""The audit trail: who changed which money, plan or entitlement, and how."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from common.clock import utcnow
from common.ids import new_id
from common.logging import request_id_var
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
