"""One idempotency record per (API key, Idempotency-Key): the claim relies on it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T08:40:11:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (api_key_id, key) on idempotency_record"


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="common", description=DESCRIPTION)

    async def create_index() -> None:
        await RawTable.raw(
            "CREATE UNIQUE INDEX IF NOT EXISTS idempotency_record_key_uq"
            " ON idempotency_record (api_key_id, key)"
        )

    async def drop_index() -> None:
        await RawTable.raw("DROP INDEX IF EXISTS idempotency_record_key_uq")

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
