"""Piccolo app for the sla tables."""

import os

from piccolo.conf.apps import AppConfig

from sla.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="sla",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=list(TABLES),
    migration_dependencies=["common.piccolo_app"],
    commands=[],
)
