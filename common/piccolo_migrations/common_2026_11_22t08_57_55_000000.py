"""Webhook indexes: one delivery per (event, endpoint), and the dispatcher's and sweep's scans."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T08:57:55:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (event_id, endpoint_id) on webhook_delivery; partial indexes for due work"


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="common", description=DESCRIPTION)

    async def create_indexes() -> None:
        # Exactly one delivery per event and endpoint: the dispatcher inserts ON CONFLICT DO NOTHING.
        await RawTable.raw(
            "CREATE UNIQUE INDEX IF NOT EXISTS webhook_delivery_event_endpoint_uq"
            " ON webhook_delivery (event_id, endpoint_id)"
        )
        # The sweep reads only deliveries still waiting for an attempt.
        await RawTable.raw(
            "CREATE INDEX IF NOT EXISTS webhook_delivery_due_idx"
            " ON webhook_delivery (next_attempt_at) WHERE status IN ('pending', 'sending')"
        )
        # The dispatcher reads only events not yet fanned out.
        await RawTable.raw(
            "CREATE INDEX IF NOT EXISTS outbound_event_undispatched_idx"
            " ON outbound_event (created_at) WHERE dispatched_at IS NULL"
        )

    async def drop_indexes() -> None:
        await RawTable.raw("DROP INDEX IF EXISTS outbound_event_undispatched_idx")
        await RawTable.raw("DROP INDEX IF EXISTS webhook_delivery_due_idx")
        await RawTable.raw("DROP INDEX IF EXISTS webhook_delivery_event_endpoint_uq")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
