"""The audit trail for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import get
from litestar.params import FromQuery

from api.auth import ADMIN
from api.pagination import Limit, Page
from common.tables import AuditLog


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


@get(
    "/v1/audit-log",
    operation_id="listAuditLog",
    tags=["audit"],
    opt=ADMIN,
    summary="Who changed what, newest first",
)
async def list_audit_log(
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
    entity_id: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
) -> Page[AuditEntry]:
    query = (
        AuditLog.objects()
        .output(load_json=True)
        .order_by(AuditLog.id, ascending=False)
        .limit(limit + 1)
    )
    if starting_after:
        query = query.where(AuditLog.id < starting_after)
    if entity_id:
        query = query.where(AuditLog.entity_id == entity_id)
    if action:
        query = query.where(AuditLog.action == action)
    rows = await query
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
        for r in rows[:limit]
    ]
    return Page(data=entries, has_more=len(rows) > limit)
