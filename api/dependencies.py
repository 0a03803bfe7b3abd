"""What handlers are given (``Provide``), app-wide: the settings and the follow-up queue.

Handlers name them as parameters (``settings: NamedDependency[Settings]``,
``followups: NamedDependency[FollowUps]``); nothing reaches into ``app.state`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from litestar.datastructures import State
from litestar.di import Provide

from common.config import Settings
from sla.schemas import SlaJob
from workers import queue


class FollowUps:
    """Enqueues the follow-up work of a change that has committed.

    With Redis away the change still stands (it is answered as made): every job kind has
    a sweep that finds its work in PostgreSQL (``workers.queue.after_commit``).
    """

    def __init__(self, redis: Any) -> None:
        self._redis = redis  # the queue's connection; api does not name arq's types

    async def sla(self, jobs: Sequence[SlaJob]) -> None:
        if jobs:
            await queue.after_commit(queue.enqueue_sla_jobs(self._redis, jobs), "SLA jobs")

    async def stripe_event(self, event_id: str) -> None:
        await queue.after_commit(
            queue.enqueue_stripe_event(self._redis, event_id), "the Stripe event"
        )

    async def webhook_delivery(self, delivery_id: str, at: datetime) -> None:
        await queue.after_commit(
            queue.enqueue_webhook_delivery(self._redis, delivery_id, at), "the redelivery"
        )


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def _followups(state: State) -> FollowUps:
    return FollowUps(state.redis)


DEPENDENCIES = {
    "settings": Provide(_settings, sync_to_thread=False),
    "followups": Provide(_followups, sync_to_thread=False),
}
