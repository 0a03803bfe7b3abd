"""Worker start-up and shutdown: settings, logging, database pool, Redis."""

from __future__ import annotations

import logging
from typing import Any

from billing.service import close_stripe, configure_stripe
from common import db
from common.config import configure_logging, get_settings

log = logging.getLogger("workers")


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    await db.open_pool(
        max_size=settings.worker_database_pool_size,
        acquire_timeout=settings.database_acquire_timeout_seconds,
        application_name="support-billing-worker",
    )
    configure_stripe(settings)
    ctx["settings"] = settings
    log.info("worker started", extra={"queue": "support-billing"})


async def shutdown(ctx: dict[str, Any]) -> None:
    await close_stripe()
    await db.close_pool()
    log.info("worker stopped")
