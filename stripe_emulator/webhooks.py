"""Signed webhook delivery: one ordered queue per endpoint, retried with backoff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from stripe_emulator.events import type_matches
from stripe_emulator.objects import Obj
from stripe_emulator.state import State

log = logging.getLogger("stripe_emulator.webhooks")

RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)  # then give up: 5 attempts in about 4 s
TIMEOUT = 5.0
LOG_LIMIT = 50_000  # delivery records kept in a long dev session


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
class _Queue:
    pending: deque[Obj] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class WebhookDispatcher:
    """Posts every event to every matching target, in creation order per target."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.queues: dict[Target, _Queue] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._client: httpx.AsyncClient | None = None
        self._idle = asyncio.Event()
        state.listeners.append(self.enqueue)

    def targets(self) -> list[Target]:
        found = []
        if self.state.webhook_url:
            found.append(Target(self.state.webhook_url, self.state.webhook_secret))
        for endpoint in self.state.all("webhook_endpoint"):
            if endpoint["status"] == "enabled":
                found.append(
                    Target(endpoint["url"], endpoint["_secret"], tuple(endpoint["enabled_events"]))
                )
        return found

    def enqueue(self, event: Obj) -> None:
        targets = [t for t in self.targets() if type_matches(list(t.enabled_events), event["type"])]
        event["pending_webhooks"] = len(targets)
        for target in targets:
            queue = self.queues.setdefault(target, _Queue())
            queue.pending.append(event)
            self._start(target, queue)

    def _start(self, target: Target, queue: _Queue) -> None:
        if queue.worker is not None and not queue.worker.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (direct use of State); `flush` starts the workers
        self._idle.clear()
        queue.worker = loop.create_task(self._drain(target, queue))

    def pending(self) -> int:
        return sum(len(q.pending) for q in self.queues.values())

    async def _drain(self, target: Target, queue: _Queue) -> None:
        while queue.pending:
            event = queue.pending[0]
            await self._deliver(target, event)
            queue.pending.popleft()
        if self.pending() == 0:
            self._idle.set()

    async def _deliver(self, target: Target, event: Obj) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        record: dict[str, Any] = {
            "event": event["id"],
            "type": event["type"],
            "url": target.url,
            "attempts": 0,
            "status": None,
            "delivered": False,
        }
        self.deliveries.append(record)
        if len(self.deliveries) > LOG_LIMIT:
            del self.deliveries[: LOG_LIMIT // 10]
        for delay in (*RETRY_DELAYS, None):
            record["attempts"] += 1
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
                    return
            except httpx.HTTPError as e:
                record["status"] = f"{type(e).__name__}: {e}"
            if delay is None:
                log.warning("giving up on %s to %s: %s", event["id"], target.url, record["status"])
                return
            await asyncio.sleep(delay)

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
        self.reset()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
