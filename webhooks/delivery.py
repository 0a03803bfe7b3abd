"""One attempt of a delivery: claimed under a lease, signed, sent, logged, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import msgspec

from common import db
from common.clock import utcnow
from webhooks.policy import refused_target
from webhooks.schemas import (
    CANCELED,
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
    WAITING,
    DeliveryStatus,
)
from webhooks.signing import SIGNATURE_HEADER, sign
from webhooks.tables import WebhookDelivery, WebhookEndpoint

log = logging.getLogger("webhooks.delivery")

EVENT_ID_HEADER: Final = "Support-Billing-Event-Id"
USER_AGENT: Final = "Support-Billing-Webhooks/1"
TIMEOUT_SECONDS: Final = 10.0
# An attempt holds its delivery this long; a worker that dies mid-attempt frees it afterwards.
# It must outlast the host lookup and the HTTP timeout, or a slow attempt could be taken
# over and sent twice.
ATTEMPT_LEASE: Final = timedelta(seconds=60)
FIRST_RETRY_DELAY: Final = timedelta(seconds=30)
MAX_RETRY_DELAY: Final = timedelta(hours=1)
JITTER: Final = 0.1
MAX_ERROR_LENGTH: Final = 500
MAX_HISTORY: Final = 50


def retry_delay(attempt: int, jitter: float = 1.0) -> timedelta:
    """The pause after failed attempt ``attempt`` (1-based): 30 s doubling, at most 1 h.

    ``jitter`` scales it (the worker draws it from 1 ± 10 %) so that endpoints coming back
    after an outage are not hit by every retry at the same instant.
    """
    doubled = FIRST_RETRY_DELAY * (1 << min(max(attempt, 1) - 1, 16))
    return min(MAX_RETRY_DELAY, doubled * jitter)


def draw_jitter() -> float:
    """A factor in 1 ± ``JITTER`` for ``retry_delay``."""
    return random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - spreads retries, not a secret


class Outcome(msgspec.Struct, frozen=True):
    """Where an attempt leaves its delivery: delivered, failed, or pending until the next one."""

    status: DeliveryStatus  # DELIVERED, FAILED or PENDING
    next_attempt_at: datetime | None


def outcome(
    status_code: int | None,
    *,
    finished: datetime,
    attempt: int,
    retry_until: datetime,
    jitter: float = 1.0,
) -> Outcome:
    """The outcome of attempt ``attempt`` that ended at ``finished`` with ``status_code``.

    A 2xx delivers; any other answer, or none, is retried after ``retry_delay`` while the
    retry window lasts. The last retry lands on the window's end rather than being skipped.
    """
    if status_code is not None and 200 <= status_code < 300:
        return Outcome(DELIVERED, None)
    if finished >= retry_until:
        return Outcome(FAILED, None)
    return Outcome(PENDING, min(finished + retry_delay(attempt, jitter), retry_until))


class _Claim(msgspec.Struct, frozen=True):
    attempt: int
    url: str
    secret: str
    event_id: str
    payload: str


async def _claim(delivery_id: str) -> _Claim | None:
    """Take the delivery for one attempt if it is due, under its row lock."""
    async with db.engine().transaction():
        row = (
            await WebhookDelivery.objects()
            .where(WebhookDelivery.id == delivery_id)
            .lock_rows()
            .first()
        )
        if row is None or row.status not in WAITING:
            return None
        now = utcnow()
        if row.next_attempt_at is None or row.next_attempt_at > now:
            return None  # not due (or another worker holds the attempt's lease)
        endpoint = (
            await WebhookEndpoint.objects().where(WebhookEndpoint.id == row.endpoint_id).first()
        )
        if endpoint is None or endpoint.disabled_at is not None:
            await WebhookDelivery.update(
                {WebhookDelivery.status: CANCELED, WebhookDelivery.next_attempt_at: None}
            ).where(WebhookDelivery.id == delivery_id)
            return None
        attempt = row.attempts + 1
        await WebhookDelivery.update(
            {
                WebhookDelivery.status: SENDING,
                WebhookDelivery.attempts: attempt,
                WebhookDelivery.next_attempt_at: now + ATTEMPT_LEASE,
            }
        ).where(WebhookDelivery.id == delivery_id)
        claim: _Claim = _Claim(
            attempt=attempt,
            url=endpoint.url,
            secret=endpoint.secret,
            event_id=row.event_id,
            payload=row.payload,
        )
    return claim


async def _send(client: httpx.AsyncClient, claim: _Claim) -> tuple[int | None, str | None]:
    """POST the signed body once; the status code, or the error that stopped the request."""
    body = claim.payload.encode()
    timestamp = int(utcnow().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(claim.secret, timestamp, body),
        EVENT_ID_HEADER: claim.event_id,
    }
    try:
        # httpx's timeout bounds each read, not the whole exchange; a receiver trickling its
        # headers must not outlive the attempt's lease.
        async with asyncio.timeout(TIMEOUT_SECONDS):
            # Streamed and never read: a receiver's answer body is of no use and may be huge.
            async with client.stream("POST", claim.url, content=body, headers=headers) as response:
                return response.status_code, None
    except (TimeoutError, httpx.TimeoutException):
        return None, f"timed out after {TIMEOUT_SECONDS:g} s"
    except httpx.HTTPError as e:
        return None, f"{type(e).__name__}: {e}"[:MAX_ERROR_LENGTH] or type(e).__name__


async def _record(
    delivery_id: str,
    claim: _Claim,
    started: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> datetime | None:
    """Store the attempt's outcome in the delivery log; the next attempt's instant, if any."""
    async with db.engine().transaction():
        row = (
            await WebhookDelivery.objects()
            .where(WebhookDelivery.id == delivery_id)
            .lock_rows()
            .output(load_json=True)
            .first()
        )
        if row is None or row.attempts != claim.attempt or row.status != SENDING:
            # Redelivered, canceled or taken over meanwhile: that state wins over this outcome.
            log.warning(
                "webhook attempt outcome superseded",
                extra={"delivery_id": delivery_id, "attempt": claim.attempt},
            )
            return None
        finished = utcnow()
        entry = {
            "attempt": claim.attempt,
            "at": started.isoformat(),
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
        }
        history = [*(row.history or []), entry][-MAX_HISTORY:]
        result = outcome(
            status_code,
            finished=finished,
            attempt=claim.attempt,
            retry_until=row.retry_until,
            jitter=draw_jitter(),
        )
        values: dict[Any, Any] = {
            WebhookDelivery.last_attempt_at: started,
            WebhookDelivery.last_status_code: status_code,
            WebhookDelivery.last_error: error,
            WebhookDelivery.last_duration_ms: duration_ms,
            WebhookDelivery.history: history,
            WebhookDelivery.status: result.status,
            WebhookDelivery.next_attempt_at: result.next_attempt_at,
        }
        if result.status == DELIVERED:
            values[WebhookDelivery.delivered_at] = finished
        await WebhookDelivery.update(values).where(WebhookDelivery.id == delivery_id)
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": delivery_id,
            "attempt": claim.attempt,
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
            "outcome": result.status,
        },
    )
    return result.next_attempt_at


async def attempt_delivery(
    delivery_id: str, *, client: httpx.AsyncClient | None = None, block_internal: bool = False
) -> datetime | None:
    """Make one attempt of the delivery if it is due; the next attempt's instant, if any.

    Safe to run twice and concurrently: a delivered, canceled or not-yet-due delivery is left
    alone, and the attempt's lease keeps a second worker off it while the request is out.
    ``block_internal`` (production) refuses hosts resolving to private or loopback addresses.
    """
    claim = await _claim(delivery_id)
    if claim is None:
        return None
    started = utcnow()
    clock = time.perf_counter()
    status_code: int | None
    error: str | None
    refusal = await refused_target(claim.url) if block_internal else None
    if refusal is not None:
        status_code, error = None, refusal
    elif client is not None:
        status_code, error = await _send(client, claim)
    else:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as own:
            status_code, error = await _send(own, claim)
    duration_ms = round((time.perf_counter() - clock) * 1000)
    return await _record(delivery_id, claim, started, status_code, error, duration_ms)
