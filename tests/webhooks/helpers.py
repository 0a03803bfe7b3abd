"""Webhook test helpers: a local receiver that records requests and can be told to fail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec

from common.clock import utcnow
from webhooks import service
from webhooks.schemas import WebhookEndpointCreate
from webhooks.tables import WebhookDelivery


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return msgspec.json.decode(self.body, type=dict[str, object])


@dataclass
class Receiver:
    """An HTTP/1.1 server on this event loop (the burst worker runs on it too)."""

    failures: int = 0
    failure_status: int = 500
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail_next(self, times: int, status: int = 500) -> None:
        self.failures, self.failure_status = times, status

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            status = 200
            if self.failures > 0:
                self.failures -= 1
                status = self.failure_status
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


Drive = Callable[[], Awaitable[int]]


async def make_due(delivery_id: str) -> None:
    """Pretend the retry's wait is over.

    The deferred job in Redis stays where it is; the sweep enqueues a new job, whose id
    carries the new instant (strictly earlier than the old one, so never the same id).
    """
    row = await WebhookDelivery.objects().where(WebhookDelivery.id == delivery_id).first()
    assert row is not None
    assert row.next_attempt_at is not None
    due = min(row.next_attempt_at, utcnow()) - timedelta(seconds=1)
    await WebhookDelivery.update({WebhookDelivery.next_attempt_at: due}).where(
        WebhookDelivery.id == delivery_id
    )


async def only_delivery() -> WebhookDelivery:
    rows = await WebhookDelivery.objects().output(load_json=True)
    assert len(rows) == 1, rows
    return rows[0]


async def endpoint_for(
    receiver: Receiver, events: list[str], path: str = "/hook"
) -> tuple[str, str]:
    """A new endpoint pointing at ``receiver``: (id, secret)."""
    new = WebhookEndpointCreate(url=receiver.url(path), events=events)
    created = await service.create_endpoint(new, production=False)
    assert created.secret is not None
    return created.id, created.secret
