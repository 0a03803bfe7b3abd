"""Signed webhook delivery, retried on Stripe's schedule: exponential backoff for up to 3 days.

Each endpoint has its own queue. A first attempt goes out in event order; a failed one is
rescheduled (it does not hold back the events behind it, as on Stripe, which promises no
order). The queue lives in the emulator's store, so a restart resumes it. Tests compress
the schedule with `time_scale` (a delay of `d` seconds waits `d * time_scale`); nothing
gives up early.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from stripe_emulator.events import type_matches
from stripe_emulator.objects import Obj
from stripe_emulator.state import State

log = logging.getLogger("stripe_emulator.webhooks")

# Stripe: "In live mode, Stripe attempts to deliver a given event to your webhook endpoint
# for up to 3 days with an exponential back off." (docs.stripe.com/webhooks#retries)
RETRY_HORIZON = 3 * 86_400.0
FIRST_RETRY = 60.0
MAX_RETRY_DELAY = 12 * 3600.0
TIMEOUT = 5.0
LOG_LIMIT = 50_000  # delivery records kept in a long dev session


def retry_delays() -> tuple[float, ...]:
    """Seconds before each retry: 1 min doubling up to 12 h, the last landing at 3 days."""
    delays: list[float] = []
    total, delay = 0.0, FIRST_RETRY
    while total + delay < RETRY_HORIZON:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, MAX_RETRY_DELAY)
    delays.append(RETRY_HORIZON - total)
    return tuple(delays)


RETRY_DELAYS = retry_delays()


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature` header value: `t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Target:
    url: str
    secret: str
    enabled_events: tuple[str, ...] = ("*",)


@dataclass
class Delivery:
    id: int
    event: Obj
    attempts: int
    next_attempt: float  # unix time
    record: dict[str, Any]


@dataclass
class _Queue:
    pending: list[Delivery] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class WebhookDispatcher:
    """Posts every event to every matching target; retries failures on the schedule."""

    def __init__(self, state: State, *, time_scale: float = 1.0) -> None:
        self.state = state
        self.time_scale = time_scale
        self.queues: dict[Target, _Queue] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._client: httpx.AsyncClient | None = None
        self._idle = asyncio.Event()
        self._local_ids = 0
        state.listeners.append(self.enqueue)

    def targets(self) -> list[Target]:
        found = []
        if self.state.webhook_url:
            found.append(Target(self.state.webhook_url, self.state.webhook_secret))
        for endpoint in self.state.objects.get("webhook_endpoint", {}).values():
            if endpoint["status"] == "enabled":
                found.append(
                    Target(endpoint["url"], endpoint["_secret"], tuple(endpoint["enabled_events"]))
                )
        return found

    def enqueue(self, event: Obj) -> None:
        targets = [t for t in self.targets() if type_matches(list(t.enabled_events), event["type"])]
        event["pending_webhooks"] = len(targets)
        now = time.time()
        for target in targets:
            self._add(target, event, attempts=0, at=now)

    def _add(
        self, target: Target, event: Obj, *, attempts: int, at: float, row: int | None = None
    ) -> None:
        store = self.state.store
        if row is None and store is not None:
            row = store.enqueue(target.url, target.secret, target.enabled_events, event["id"], at)
        if row is None:
            self._local_ids += 1
            row = self._local_ids
        record: dict[str, Any] = {
            "event": event["id"],
            "type": event["type"],
            "url": target.url,
            "attempts": attempts,
            "status": None,
            "delivered": False,
            "next_attempt": at,
        }
        self.deliveries.append(record)
        if len(self.deliveries) > LOG_LIMIT:
            del self.deliveries[: LOG_LIMIT // 10]
        queue = self.queues.setdefault(target, _Queue())
        queue.pending.append(Delivery(row, event, attempts, at, record))
        queue.wakeup.set()
        self._start(target, queue)

    def resume(self) -> None:
        """Pick up the deliveries a previous run left queued (from the store)."""
        store = self.state.store
        if store is None:
            return
        for queued in store.queued():
            event = self.state.by_id.get(queued.event_id)
            if event is None:
                store.dequeue(queued.id)
                continue
            target = Target(queued.url, queued.secret, queued.enabled_events)
            self._add(
                target, event, attempts=queued.attempts, at=queued.next_attempt, row=queued.id
            )

    def _start(self, target: Target, queue: _Queue) -> None:
        if queue.worker is not None and not queue.worker.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (direct use of State); `flush`/`resume` start the workers
        self._idle.clear()
        queue.worker = loop.create_task(self._drain(target, queue))

    def pending(self) -> int:
        return sum(len(q.pending) for q in self.queues.values())

    async def _drain(self, target: Target, queue: _Queue) -> None:
        while queue.pending:
            due = min(queue.pending, key=lambda d: (d.next_attempt, d.id))
            wait = (due.next_attempt - time.time()) if due.attempts else 0.0
            if wait > 0:
                queue.wakeup.clear()
                try:
                    async with asyncio.timeout(wait):
                        await queue.wakeup.wait()  # an earlier delivery may have come in
                except TimeoutError:
                    pass
                continue
            delivered = await self._deliver(target, due)
            self._settle(queue, due, delivered)
        if self.pending() == 0:
            self._idle.set()

    def _settle(self, queue: _Queue, delivery: Delivery, delivered: bool) -> None:
        store = self.state.store
        if delivered or delivery.attempts > len(RETRY_DELAYS):
            if not delivered:
                log.warning(
                    "giving up on %s to %s after %d attempts: %s",
                    delivery.event["id"],
                    delivery.record["url"],
                    delivery.attempts,
                    delivery.record["status"],
                )
            queue.pending.remove(delivery)
            delivery.record["next_attempt"] = None
            if store is not None:
                store.dequeue(delivery.id)
            return
        delay = RETRY_DELAYS[delivery.attempts - 1] * self.time_scale
        delivery.next_attempt = time.time() + delay
        delivery.record["next_attempt"] = delivery.next_attempt
        if store is not None:
            store.reschedule(delivery.id, delivery.attempts, delivery.next_attempt)

    async def _deliver(self, target: Target, delivery: Delivery) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        event, record = delivery.event, delivery.record
        delivery.attempts += 1
        record["attempts"] = delivery.attempts
        payload = json.dumps(event)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, target.secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        try:
            response = await self._client.post(target.url, content=payload, headers=headers)
            record["status"] = response.status_code
            if 200 <= response.status_code < 300:
                record["delivered"] = True
                event["pending_webhooks"] = max(int(event["pending_webhooks"]) - 1, 0)
                self.state.touch(event)
                self.state.commit([])
                return True
        except httpx.HTTPError as e:
            record["status"] = f"{type(e).__name__}: {e}"
        return False

    async def flush(self, wait_seconds: float = 30.0) -> bool:
        """Wait until every queued event was delivered or given up on; False on timeout."""
        for target, queue in self.queues.items():
            if queue.pending:
                self._start(target, queue)
        if self.pending() == 0:
            return True
        try:
            async with asyncio.timeout(wait_seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return self.pending() == 0

    def reset(self) -> None:
        for queue in self.queues.values():
            if queue.worker is not None:
                queue.worker.cancel()
        self.queues = {}
        self.deliveries = []
        self._idle.set()

    async def close(self) -> None:
        for queue in self.queues.values():
            if queue.worker is not None:
                queue.worker.cancel()
        self.queues = {}
        if self._client is not None:
            await self._client.aclose()
            self._client = None
