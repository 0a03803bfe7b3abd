"""The Stripe inbox keeps each raw body (bytea) and marks events that cannot be applied dead."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSONB, Bytea, Timestamptz
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T10:07:37:234491"
VERSION = "1.38.0"
DESCRIPTION = "stripe inbox: raw bodies, nullable parsed payload, dead events"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    manager.add_column(
        table_class_name="StripeEvent",
        tablename="stripe_event",
        column_name="dead_at",
        db_column_name="dead_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="StripeEvent",
        tablename="stripe_event",
        column_name="body",
        db_column_name="body",
        column_class_name="Bytea",
        column_class=Bytea,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.alter_column(
        table_class_name="StripeEvent",
        tablename="stripe_event",
        column_name="payload",
        db_column_name="payload",
        params={"default": None, "null": True},
        old_params={"default": "{}", "null": False},
        column_class=JSONB,
        old_column_class=JSONB,
        schema=None,
    )

    return manager
