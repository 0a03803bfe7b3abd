"""Piccolo configuration: the engine reads DATABASE_URL, the registry lists every app."""

import os

from piccolo.conf.apps import AppRegistry

from common.db import Engine

# The launcher exports DATABASE_URL (the embedded server's when none is configured)
# before any table is used; the fallback only lets tooling import this module.
DB = Engine(
    config={"dsn": os.environ.get("DATABASE_URL", "postgresql://localhost:5432/support_billing")},
    extensions=(),
)

APP_REGISTRY = AppRegistry(
    apps=[
        "common.piccolo_app",
        "billing.piccolo_app",
        "sla.piccolo_app",
    ]
)
