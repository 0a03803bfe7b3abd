"""Piccolo configuration: the engine reads DATABASE_URL, the registry lists every app."""

from piccolo.conf.apps import AppRegistry

from common.config import engine_dsn
from common.db import Engine

DB = Engine(config={"dsn": engine_dsn()}, extensions=())

APP_REGISTRY = AppRegistry(
    apps=[
        "common.piccolo_app",
        "billing.piccolo_app",
        "sla.piccolo_app",
    ]
)
