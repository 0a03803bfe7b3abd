"""Every write that can change an entitlement notifies the processes caching it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T12:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notify entitlement_changed (the customer's id, or * for the catalog) on writes"

# table -> the column naming the customer whose entitlement the row feeds ('*': everyone)
_SOURCES = (
    ("customer", "id"),
    ("subscription", "customer_id"),
    ("incident_usage", "customer_id"),
    ("fast_track_purchase", "customer_id"),
    ("fast_track_ledger", "customer_id"),
    ("plan", "*"),
)


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def create() -> None:
        await RawTable.raw(
            """
            CREATE OR REPLACE FUNCTION notify_entitlement_changed() RETURNS trigger AS $$
            DECLARE
                changed jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
            BEGIN
                PERFORM pg_notify(
                    'entitlement_changed',
                    CASE WHEN TG_ARGV[0] = '*' THEN '*' ELSE changed ->> TG_ARGV[0] END
                );
                RETURN NULL;
            END
            $$ LANGUAGE plpgsql
            """
        )
        for table, column in _SOURCES:
            await RawTable.raw(f"DROP TRIGGER IF EXISTS {table}_entitlement_changed ON {table}")
            await RawTable.raw(
                f"CREATE TRIGGER {table}_entitlement_changed"
                f" AFTER INSERT OR UPDATE OR DELETE ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION notify_entitlement_changed('{column}')"
            )

    async def drop() -> None:
        for table, _ in _SOURCES:
            await RawTable.raw(f"DROP TRIGGER IF EXISTS {table}_entitlement_changed ON {table}")
        await RawTable.raw("DROP FUNCTION IF EXISTS notify_entitlement_changed()")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
