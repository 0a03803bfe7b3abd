"""Piccolo app for the platform tables."""

import os

from piccolo.conf.apps import AppConfig

from common.tables import (
    ApiKey,
    AuditLog,
    IdempotencyRecord,
    OutboundEvent,
    WebhookDelivery,
    WebhookEndpoint,
)

APP_CONFIG = AppConfig(
    app_name="common",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[
        ApiKey,
        IdempotencyRecord,
        AuditLog,
        OutboundEvent,
        WebhookEndpoint,
        WebhookDelivery,
    ],
    migration_dependencies=[],
    commands=[],
)
