"""Sessions of the finance review page (/finance): hashed cookie secrets with an expiry."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T13:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "finance_session: the review page's server-side sessions"


def _params(**overrides):
    params = {
        "default": "",
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }
    params.update(overrides)
    return params


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="common", description=DESCRIPTION)

    manager.add_table(
        class_name="FinanceSession", tablename="finance_session", schema=None, columns=None
    )
    columns = (
        ("id", Varchar, _params(length=64, primary_key=True)),
        ("api_key_id", Varchar, _params(length=40, index=True)),
        ("csrf_token", Varchar, _params(length=64)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
        ("expires_at", Timestamptz, _params(default=TimestamptzNow(), index=True)),
    )
    for name, column_class, params in columns:
        manager.add_column(
            table_class_name="FinanceSession",
            tablename="finance_session",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )

    return manager
