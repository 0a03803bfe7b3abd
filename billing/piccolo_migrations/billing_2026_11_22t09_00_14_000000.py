"""Composite indexes for the entitlement read and the fast-track ledger."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T09:00:14:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes for the hot entitlement path"

_INDEXES = (
    ("incident_usage_customer_opened", "incident_usage (customer_id, opened_at)"),
    ("fast_track_ledger_customer_purchase", "fast_track_ledger (customer_id, purchase_id)"),
    ("subscription_customer_created", "subscription (customer_id, created_at)"),
    ("subscription_history_customer_effective", "subscription_history (customer_id, effective_at)"),
)


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def create() -> None:
        for name, target in _INDEXES:
            await RawTable.raw(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    async def drop() -> None:
        for name, _ in _INDEXES:
            await RawTable.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
