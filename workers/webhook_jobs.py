"""arq jobs of the webhook capability: each a few lines calling a service."""

from __future__ import annotations

import logging
from typing import Any

from arq import cron

from common.config import Settings, get_settings
from webhooks import service
from workers import queue
from workers.jobs import retry_on_outage

log = logging.getLogger("workers.webhooks")


def _settings(ctx: dict[str, Any]) -> Settings:
    settings = ctx.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


@retry_on_outage
async def dispatch_webhooks(ctx: dict[str, Any]) -> int:
    """Fan new outbound events out into deliveries, then enqueue every delivery now due.

    The database is the truth: deliveries whose jobs Redis lost are found here again.
    """
    settings = _settings(ctx)
    dispatched = await service.dispatch_pending(retry_hours=settings.webhook_retry_hours)
    due = await service.due_deliveries()
    for delivery in due:
        await queue.enqueue_webhook_delivery(ctx["redis"], delivery.id, delivery.due_at)
    if dispatched or due:
        log.info("webhooks dispatched", extra={"events": dispatched, "due": len(due)})
    return len(due)


@retry_on_outage
async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> bool:
    """One attempt of one delivery; schedules the next attempt when this one failed."""
    next_at = await service.attempt_delivery(delivery_id, block_internal=_settings(ctx).production)
    if next_at is not None:
        await queue.enqueue_webhook_delivery(ctx["redis"], delivery_id, next_at, deferred=True)
    return next_at is None


FUNCTIONS: list[Any] = [dispatch_webhooks, deliver_webhook]
CRON_JOBS: list[Any] = [
    cron(dispatch_webhooks, second=set(range(0, 60, 5)), unique=True, run_at_startup=True),
]
