"""Piccolo app for the platform tables, and the webhooks tables that began here."""

import os

from piccolo.conf.apps import AppConfig

from common.tables import ApiKey, AuditLog, FinanceSession, IdempotencyRecord

# The one import of a domain package from common: the webhooks tables were created by this
# app's migrations, and a table stays in the app whose history made it (a move to another
# app would be a migration that drops and recreates it).
from webhooks.tables import OutboundEvent, WebhookDelivery, WebhookEndpoint

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
        FinanceSession,
    ],
    migration_dependencies=[],
    commands=[],
)
