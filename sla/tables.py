"""Piccolo tables of the sla domain: incidents and their append-only SLA event ledger."""

from __future__ import annotations

from piccolo.columns import JSONB, BigSerial, Boolean, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Incident(Table, tablename="incident"):
    """A helpdesk ticket under an SLA; ``sla_status`` drives enforcement.

    The sweep's partial indexes (active by ``due_at`` and by ``next_warning_at``,
    pending escalations and credits) and the unique ``(customer_id, external_ref)``
    are created by a raw step in the migration: Piccolo columns express neither.
    """

    id = Varchar(length=40, primary_key=True)
    customer_id = Varchar(length=40)  # indexed by the unique (customer_id, external_ref)
    external_ref = Varchar(length=200)
    priority = Varchar(length=2)
    opened_at = Timestamptz()
    context = JSONB(default={})
    # sla.schemas.EntitlementSnapshot: tier, plan version, targets, fast-track, calendar.
    entitlement = JSONB(default={})
    tier = Varchar(length=60)
    fast_track = Boolean(default=False)  # a fast-track target applies
    target_minutes = Integer()
    coverage = Varchar(length=20)
    target_source = Varchar(length=20, default="plan")  # plan, fast_track
    due_at = Timestamptz()
    # [{"fraction": 0.5, "at": "…Z"}, …] ascending; warnings_sent of them are recorded.
    warn_at = JSONB(default=[])
    warnings_sent = Integer(default=0)
    next_warning_at = Timestamptz(null=True, default=None)
    # Closed pauses [["from", "to"], …]; an open pause lives in paused_at.
    pauses = JSONB(default=[])
    paused_at = Timestamptz(null=True, default=None)
    first_response_at = Timestamptz(null=True, default=None)
    resolved_at = Timestamptz(null=True, default=None)
    sla_status = Varchar(length=10, default="active")  # active, paused, achieved, breached
    breached_at = Timestamptz(null=True, default=None)
    escalation_level = Integer(default=0)
    next_escalation_at = Timestamptz(null=True, default=None)
    # null until breached; then pending -> issued | none (policy paid nothing)
    credit_status = Varchar(length=10, null=True, default=None)
    credit_id = Varchar(length=40, null=True, default=None)
    credit_kind = Varchar(length=20, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class SlaEvent(Table, tablename="sla_event"):
    """Append-only: every change of an incident's SLA; ``seq`` is the ledger order."""

    id = Varchar(length=40, primary_key=True)
    seq = BigSerial()
    incident_id = Varchar(length=40, index=True)
    customer_id = Varchar(length=40, index=True)
    type = Varchar(length=30)
    at = Timestamptz()
    data = JSONB(default={})
    created_at = Timestamptz(default=TimestamptzNow())


TABLES: tuple[type[Table], ...] = (Incident, SlaEvent)
