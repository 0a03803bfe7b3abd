"""The audit trail for admins."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromQuery

from api.auth import ADMIN
from api.pagination import Limit, Page
from common import audit


class AuditLogController(Controller):
    """Who changed what: every change of money, plan or entitlement, newest first."""

    path = "/v1/audit-log"
    tags = ["audit"]
    opt = ADMIN

    @get(operation_id="listAuditLog", summary="Who changed what, newest first")
    async def list_entries(
        self,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
        entity_id: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
    ) -> Page[audit.AuditEntry]:
        """Every change of money, plan or entitlement, newest first: who (the API key, the
        CLI, Stripe's event), what, when, and the state before and after. Filter by the
        changed entity or the action."""
        entries, more = await audit.list_entries(
            limit=limit, starting_after=starting_after, entity_id=entity_id, action=action
        )
        return Page(data=entries, has_more=more)
