"""Events received before the inbox kept raw bodies get their stored payload as their body."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T10:07:38:000000"
VERSION = "1.38.0"
DESCRIPTION = "backfill stripe_event.body"


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def backfill() -> None:
        await RawTable.raw(
            "UPDATE stripe_event SET body = convert_to(payload::text, 'UTF8')"
            " WHERE body IS NULL AND payload IS NOT NULL"
        )

    manager.add_raw(backfill)
    return manager
