"""Indexes Piccolo columns cannot express: the unique external ref and the sweep's partial indexes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T09:18:11:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (customer_id, external_ref) on incident; partial indexes for the SLA sweep"

INDEXES = {
    # Opening the same ticket twice returns the same incident.
    "incident_customer_ref_uq": "CREATE UNIQUE INDEX IF NOT EXISTS incident_customer_ref_uq"
    " ON incident (customer_id, external_ref)",
    # The sweep: active incidents past due_at, or past a warning nobody recorded.
    "incident_active_due_idx": "CREATE INDEX IF NOT EXISTS incident_active_due_idx"
    " ON incident (due_at) WHERE sla_status = 'active'",
    "incident_active_warning_idx": "CREATE INDEX IF NOT EXISTS incident_active_warning_idx"
    " ON incident (next_warning_at) WHERE sla_status = 'active' AND next_warning_at IS NOT NULL",
    "incident_escalation_idx": "CREATE INDEX IF NOT EXISTS incident_escalation_idx"
    " ON incident (next_escalation_at) WHERE next_escalation_at IS NOT NULL",
    "incident_credit_pending_idx": "CREATE INDEX IF NOT EXISTS incident_credit_pending_idx"
    " ON incident (breached_at) WHERE credit_status = 'pending'",
    # The ledger of one incident, in order.
    "sla_event_incident_seq_idx": "CREATE INDEX IF NOT EXISTS sla_event_incident_seq_idx"
    " ON sla_event (incident_id, seq)",
}


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sla", description=DESCRIPTION)

    async def create_indexes() -> None:
        for statement in INDEXES.values():
            await RawTable.raw(statement)

    async def drop_indexes() -> None:
        for name in INDEXES:
            await RawTable.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
