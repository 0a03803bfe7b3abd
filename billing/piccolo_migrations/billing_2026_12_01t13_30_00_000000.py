"""Indexes of the finance reports: fast-track income, service credits, MRR at an instant."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T13:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes for the finance reports"

_INDEXES = (
    ("fast_track_purchase_paid_at", "fast_track_purchase (paid_at)"),
    ("service_credit_issued_at", "service_credit (issued_at)"),
    # DISTINCT ON (subscription_id) ... ORDER BY effective_at DESC: the state at an instant.
    (
        "subscription_history_sub_effective",
        "subscription_history (subscription_id, effective_at DESC, id DESC)",
    ),
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
