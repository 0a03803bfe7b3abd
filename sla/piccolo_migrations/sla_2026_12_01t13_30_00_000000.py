"""Index of the SLA reports: incidents by the time they were opened."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T13:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index for the SLA reports"

_INDEXES = (("incident_opened_at_idx", "incident (opened_at)"),)


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sla", description=DESCRIPTION)

    async def create() -> None:
        for name, target in _INDEXES:
            await RawTable.raw(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    async def drop() -> None:
        for name, _ in _INDEXES:
            await RawTable.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
