"""Outbound webhooks: endpoints, a dispatcher fanning events out, signed deliveries with retries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import msgspec

from common import audit, db
from common.clock import utcnow
from common.errors import Conflict, InvalidRequest, NotFound
from common.ids import new_id
from common.outbox import EVENT_TYPES
from common.tables import OutboundEvent, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("common.webhooks")

WILDCARD: Final = "*"
SIGNATURE_HEADER: Final = "Support-Billing-Signature"
EVENT_ID_HEADER: Final = "Support-Billing-Event-Id"
USER_AGENT: Final = "Support-Billing-Webhooks/1"
TIMEOUT_SECONDS: Final = 10.0
# An attempt holds its delivery this long; a worker that dies mid-attempt frees it afterwards.
# It must outlast the HTTP timeout, or a slow attempt could be taken over and sent twice.
ATTEMPT_LEASE: Final = timedelta(seconds=60)
FIRST_RETRY_DELAY: Final = timedelta(seconds=30)
MAX_RETRY_DELAY: Final = timedelta(hours=1)
JITTER: Final = 0.1
MAX_URL_LENGTH: Final = 2048
MAX_ERROR_LENGTH: Final = 500
MAX_HISTORY: Final = 50
DISPATCH_BATCH: Final = 500
INSERT_CHUNK: Final = 500
SWEEP_LIMIT: Final = 1000

PENDING: Final = "pending"
SENDING: Final = "sending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
DELIVERY_STATUSES: Final = (PENDING, SENDING, DELIVERED, FAILED, CANCELED)
_WAITING: Final = (PENDING, SENDING)


class EndpointNotFound(NotFound):
    pass


class DeliveryNotFound(NotFound):
    pass


class InvalidEndpoint(InvalidRequest):
    title = "Invalid webhook endpoint"


class EndpointDisabled(Conflict):
    title = "Webhook endpoint disabled"


class DeliveryInProgress(Conflict):
    title = "Delivery in progress"


class DueDelivery(msgspec.Struct, frozen=True):
    """A delivery whose next attempt is due at ``due_at``: what the worker enqueues."""

    id: str
    due_at: datetime


@contextlib.asynccontextmanager
async def _transaction() -> AsyncIterator[None]:
    """Piccolo's transaction, typed so that mypy knows it never swallows an exception."""
    async with db.engine().transaction():
        yield


# --- signatures -------------------------------------------------------------------------------


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Support-Billing-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: int = 300,
    *,
    now: int | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its time is within ``tolerance`` s.

    Receivers pass the raw request body, exactly as received. Several ``v1`` entries are
    accepted (any one matching suffices) so that a secret can be rolled without downtime.
    """
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = int(utcnow().timestamp()) if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, raw)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


# --- validation -------------------------------------------------------------------------------

# Hosts written as bare numbers (``2130706433``, ``0x7f.1``) resolve to IPs yet are no IP literal.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)$")


# IPv6 prefixes that carry or translate an IPv4 address (RFC 4291, 6052, 8215, 3056):
# the IPv4 address is what a packet to them reaches, so it decides.
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
# IANA special-purpose blocks that are not globally reachable, listed here as well as in
# Python's is_global (which lags the registries, and differs between Python versions).
_SPECIAL_V4: Final = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (its two anycast services are no receivers)
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
)
_SPECIAL_V6: Final = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",
        "fe80::/10",
    )
)


def _internal_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True unless ``address`` is globally routable, also through an embedded IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _internal_ip(address.ipv4_mapped)
        if address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL or address.teredo is not None:
            # Deprecated, site-local translation, or a tunnel to wherever the client says.
            return True
        if address in _NAT64:
            return _internal_ip(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return _internal_ip(address.sixtofour)
        if any(address in network for network in _SPECIAL_V6):
            return True
    elif any(address in network for network in _SPECIAL_V4):
        return True
    return not address.is_global or address.is_multicast


def is_internal_host(host: str) -> bool:
    """Loopback, private, link-local or otherwise non-public: refused as a target in production."""
    host = host.lower().rstrip(".")
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return _internal_ip(ipaddress.ip_address(host))
    except ValueError:
        pass
    return bool(_NUMERIC_HOST.match(host.rsplit(".", 1)[-1]))


def check_url(url: str, *, production: bool) -> str:
    """The endpoint URL if acceptable: absolute http(s); in production https to a public host."""
    if url != url.strip() or len(url) > MAX_URL_LENGTH:
        raise InvalidEndpoint(
            f"url must be an absolute URL of at most {MAX_URL_LENGTH} characters", field="url"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidEndpoint("url has an invalid port", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpoint("url must be an absolute http or https URL", field="url")
    if parts.username or parts.password:
        raise InvalidEndpoint("url must not carry credentials", field="url")
    if production:
        if parts.scheme != "https":
            raise InvalidEndpoint("url must use https", field="url")
        if is_internal_host(parts.hostname):
            raise InvalidEndpoint(
                f"url must point at a public host; {parts.hostname} is loopback, private "
                "or link-local",
                field="url",
            )
    return url


def normalize_events(events: Sequence[str]) -> list[str]:
    """Known event types, deduplicated in the given order; ``*`` alone stands for every type."""
    unknown = sorted({e for e in events if e != WILDCARD and e not in EVENT_TYPES})
    if unknown:
        raise InvalidEndpoint(
            f"unknown event types: {', '.join(unknown)}; "
            f"known: {', '.join(EVENT_TYPES)} (or {WILDCARD!r} for all)",
            field="events",
        )
    if not events:
        raise InvalidEndpoint("events must name at least one event type", field="events")
    if WILDCARD in events:
        return [WILDCARD]
    return list(dict.fromkeys(events))


def subscribed(events: Sequence[str], event_type: str) -> bool:
    return WILDCARD in events or event_type in events


# --- endpoints --------------------------------------------------------------------------------


def _endpoint_summary(row: WebhookEndpoint) -> dict[str, Any]:
    # Never the secret: audit rows are readable by every admin.
    return {
        "url": row.url,
        "events": list(row.events),
        "description": row.description,
        "disabled_at": row.disabled_at,
    }


async def create_endpoint(
    url: str, events: Sequence[str], description: str | None, *, production: bool
) -> WebhookEndpoint:
    """A new enabled endpoint with a fresh signing secret (returned once, by the API)."""
    row = WebhookEndpoint(
        id=new_id("whep"),
        url=check_url(url, production=production),
        description=description,
        events=normalize_events(events),
        secret=new_secret(),
        created_at=utcnow(),
        disabled_at=None,
    )
    async with _transaction():
        await WebhookEndpoint.insert(row)
        await audit.record(
            "webhook_endpoint.created", "webhook_endpoint", row.id, after=_endpoint_summary(row)
        )
    return row


async def rotate_secret(endpoint_id: str) -> WebhookEndpoint:
    """Give the endpoint a new signing secret (returned once, by the API); the old one stops.

    The way back for a client that lost the secret: it is never shown again, nor kept
    anywhere in clear but on the endpoint row that signs deliveries.
    """
    async with _transaction():
        row = (
            await WebhookEndpoint.objects()
            .where(WebhookEndpoint.id == endpoint_id)
            .lock_rows()
            .first()
        )
        if row is None:
            raise EndpointNotFound(f"no webhook endpoint {endpoint_id!r}")
        if row.disabled_at is not None:
            raise EndpointDisabled(f"webhook endpoint {endpoint_id!r} is disabled")
        row.secret = new_secret()
        await WebhookEndpoint.update({WebhookEndpoint.secret: row.secret}).where(
            WebhookEndpoint.id == endpoint_id
        )
        await audit.record(
            "webhook_endpoint.secret_rotated",
            "webhook_endpoint",
            endpoint_id,
            after=_endpoint_summary(row),
        )
    return row


async def get_endpoint(endpoint_id: str) -> WebhookEndpoint:
    row = await WebhookEndpoint.objects().where(WebhookEndpoint.id == endpoint_id).first()
    if row is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id!r}")
    return row


async def list_endpoints(
    limit: int, starting_after: str | None = None, *, include_disabled: bool = False
) -> tuple[list[WebhookEndpoint], bool]:
    """Endpoints newest first, and whether more follow."""
    query = WebhookEndpoint.objects().order_by(WebhookEndpoint.id, ascending=False).limit(limit + 1)
    if starting_after:
        query = query.where(WebhookEndpoint.id < starting_after)
    if not include_disabled:
        query = query.where(WebhookEndpoint.disabled_at.is_null())
    rows = await query
    return rows[:limit], len(rows) > limit


async def disable_endpoint(endpoint_id: str) -> WebhookEndpoint:
    """Disable the endpoint and cancel its waiting deliveries; disabling twice changes nothing."""
    async with _transaction():
        row = (
            await WebhookEndpoint.objects()
            .where(WebhookEndpoint.id == endpoint_id)
            .lock_rows()
            .first()
        )
        if row is None:
            raise EndpointNotFound(f"no webhook endpoint {endpoint_id!r}")
        if row.disabled_at is not None:
            return row
        before = _endpoint_summary(row)
        now = utcnow()
        await WebhookEndpoint.update({WebhookEndpoint.disabled_at: now}).where(
            WebhookEndpoint.id == endpoint_id
        )
        row.disabled_at = now
        # An attempt already on the wire finishes; its outcome is still recorded.
        await WebhookDelivery.update(
            {WebhookDelivery.status: CANCELED, WebhookDelivery.next_attempt_at: None}
        ).where((WebhookDelivery.endpoint_id == endpoint_id) & (WebhookDelivery.status == PENDING))
        await audit.record(
            "webhook_endpoint.disabled",
            "webhook_endpoint",
            endpoint_id,
            before=before,
            after=_endpoint_summary(row),
        )
    return row


# --- delivery log -----------------------------------------------------------------------------


async def list_deliveries(
    endpoint_id: str, limit: int, starting_after: str | None = None, status: str | None = None
) -> tuple[list[WebhookDelivery], bool]:
    """The endpoint's deliveries newest first, and whether more follow."""
    await get_endpoint(endpoint_id)
    query = (
        WebhookDelivery.objects()
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id, ascending=False)
        .limit(limit + 1)
        .output(load_json=True)
    )
    if starting_after:
        query = query.where(WebhookDelivery.id < starting_after)
    if status:
        if status not in DELIVERY_STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(DELIVERY_STATUSES)}", field="status"
            )
        query = query.where(WebhookDelivery.status == status)
    rows = await query
    return rows[:limit], len(rows) > limit


async def _delivery_row(delivery_id: str) -> WebhookDelivery:
    row = (
        await WebhookDelivery.objects()
        .where(WebhookDelivery.id == delivery_id)
        .output(load_json=True)
        .first()
    )
    if row is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id!r}")
    return row


async def redeliver(endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Make the delivery due now, whatever its state (delivered and failed ones too).

    Its retry window stays the original one (24 h after the event); past it, a redelivery
    is one attempt, and a failed one leaves the delivery failed again.
    """
    async with _transaction():
        endpoint = await get_endpoint(endpoint_id)
        if endpoint.disabled_at is not None:
            raise EndpointDisabled(f"webhook endpoint {endpoint_id!r} is disabled")
        row = (
            await WebhookDelivery.objects()
            .where(
                (WebhookDelivery.id == delivery_id) & (WebhookDelivery.endpoint_id == endpoint_id)
            )
            .lock_rows()
            .first()
        )
        if row is None:
            raise DeliveryNotFound(f"no delivery {delivery_id!r} for endpoint {endpoint_id!r}")
        now = utcnow()
        if row.status == SENDING and row.next_attempt_at > now:
            raise DeliveryInProgress(
                f"delivery {delivery_id!r} is being attempted; retry once the attempt ends"
            )
        await WebhookDelivery.update(
            {
                WebhookDelivery.status: PENDING,
                WebhookDelivery.next_attempt_at: now,
                WebhookDelivery.retry_until: max(row.retry_until, now),
            }
        ).where(WebhookDelivery.id == delivery_id)
        await audit.record(
            "webhook_delivery.redelivered",
            "webhook_delivery",
            delivery_id,
            before={"status": row.status, "attempts": row.attempts},
            after={"status": PENDING, "next_attempt_at": now},
        )
    return await _delivery_row(delivery_id)


# --- dispatch ---------------------------------------------------------------------------------


def event_body(event_id: str, event_type: str, created: datetime, data: Any) -> bytes:
    """The JSON body every attempt of every delivery of this event sends."""
    return msgspec.json.encode(
        {"id": event_id, "type": event_type, "created": int(created.timestamp()), "data": data}
    )


async def _dispatch_batch(retry_window: timedelta, batch_size: int) -> int:
    async with _transaction():
        # SKIP LOCKED: concurrent dispatchers take disjoint events, none waits on another.
        events = (
            await OutboundEvent.select(
                OutboundEvent.id, OutboundEvent.type, OutboundEvent.created_at, OutboundEvent.data
            )
            .where(OutboundEvent.dispatched_at.is_null())
            .order_by(OutboundEvent.created_at, OutboundEvent.id)
            .limit(batch_size)
            .lock_rows(skip_locked=True)
            .output(load_json=True)
        )
        if not events:
            return 0
        endpoints = await WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.disabled_at.is_null()
        )
        now = utcnow()
        pairs = [
            (event, endpoint)
            for event in events
            for endpoint in endpoints
            if subscribed(endpoint["events"], event["type"])
        ]
        # Ids minted in one millisecond do not sort by creation; sorted and handed out in
        # event order, they keep the delivery log (ordered by id) in the events' order.
        ids = sorted(new_id("whdl") for _ in pairs)
        rows = [
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint["id"],
                event_id=event["id"],
                event_type=event["type"],
                payload=event_body(
                    event["id"], event["type"], event["created_at"], event["data"]
                ).decode(),
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                retry_until=event["created_at"] + retry_window,
                history=[],
                created_at=now,
            )
            for delivery_id, (event, endpoint) in zip(ids, pairs, strict=True)
        ]
        # Chunked: one statement carries every value as a parameter, and PostgreSQL takes
        # at most 32767 of them.
        for start in range(0, len(rows), INSERT_CHUNK):
            # The unique (event_id, endpoint_id) index makes a second fan-out a no-op.
            await WebhookDelivery.insert(*rows[start : start + INSERT_CHUNK]).on_conflict(
                target=(WebhookDelivery.event_id, WebhookDelivery.endpoint_id),
                action="DO NOTHING",
            )
        await OutboundEvent.update({OutboundEvent.dispatched_at: now}).where(
            OutboundEvent.id.is_in([event["id"] for event in events])
        )
    return len(events)


async def dispatch_pending(
    *, retry_hours: int, batch_size: int = DISPATCH_BATCH, max_batches: int = 20
) -> int:
    """Fan undispatched outbound events out into one delivery per subscribed enabled endpoint.

    Returns the number of events dispatched. Each event is dispatched exactly once, even with
    several dispatchers running; its deliveries are then due now (see ``due_deliveries``).
    """
    window = timedelta(hours=retry_hours)
    total = 0
    for _ in range(max_batches):
        count = await _dispatch_batch(window, batch_size)
        total += count
        if count < batch_size:
            break
    return total


async def due_deliveries(limit: int = SWEEP_LIMIT) -> list[DueDelivery]:
    """Deliveries whose next attempt is due, including attempts abandoned by a dead worker."""
    rows = (
        await WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(
            WebhookDelivery.status.is_in(list(_WAITING))
            & (WebhookDelivery.next_attempt_at <= utcnow())
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return [DueDelivery(id=r["id"], due_at=r["next_attempt_at"]) for r in rows]


# --- delivery ---------------------------------------------------------------------------------


def retry_delay(attempt: int, jitter: float = 1.0) -> timedelta:
    """The pause after failed attempt ``attempt`` (1-based): 30 s doubling, at most 1 h.

    ``jitter`` scales it (the worker draws it from 1 ± 10 %) so that endpoints coming back
    after an outage are not hit by every retry at the same instant.
    """
    doubled = FIRST_RETRY_DELAY * (1 << min(max(attempt, 1) - 1, 16))
    return min(MAX_RETRY_DELAY, doubled * jitter)


def _jitter() -> float:
    return random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - spreads retries, not a secret


class _Claim(msgspec.Struct, frozen=True):
    attempt: int
    url: str
    secret: str
    event_id: str
    payload: str


async def _claim(delivery_id: str) -> _Claim | None:
    """Take the delivery for one attempt if it is due, under its row lock."""
    async with _transaction():
        row = (
            await WebhookDelivery.objects()
            .where(WebhookDelivery.id == delivery_id)
            .lock_rows()
            .first()
        )
        if row is None or row.status not in _WAITING:
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
        return _Claim(
            attempt=attempt,
            url=endpoint.url,
            secret=endpoint.secret,
            event_id=row.event_id,
            payload=row.payload,
        )


async def _refused_target(url: str) -> str | None:
    """Why ``url`` may not be called from production (its host resolves inward), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except TimeoutError:
        return f"cannot resolve {host}: timed out"
    except OSError as e:
        return f"cannot resolve {host}: {e}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _internal_ip(address):
            return f"refused: {host} resolves to non-public address {address}"
    return None


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
    """Store the attempt's outcome; the next attempt's instant when one is scheduled."""
    async with _transaction():
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
        values: dict[Any, Any] = {
            WebhookDelivery.last_attempt_at: started,
            WebhookDelivery.last_status_code: status_code,
            WebhookDelivery.last_error: error,
            WebhookDelivery.last_duration_ms: duration_ms,
            WebhookDelivery.history: history,
        }
        next_at: datetime | None = None
        if status_code is not None and 200 <= status_code < 300:
            values |= {
                WebhookDelivery.status: DELIVERED,
                WebhookDelivery.delivered_at: finished,
                WebhookDelivery.next_attempt_at: None,
            }
        elif finished >= row.retry_until:
            values |= {WebhookDelivery.status: FAILED, WebhookDelivery.next_attempt_at: None}
        else:
            # The last retry lands on the window's end rather than being skipped.
            next_at = min(finished + retry_delay(claim.attempt, _jitter()), row.retry_until)
            values |= {WebhookDelivery.status: PENDING, WebhookDelivery.next_attempt_at: next_at}
        await WebhookDelivery.update(values).where(WebhookDelivery.id == delivery_id)
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": delivery_id,
            "attempt": claim.attempt,
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
            "outcome": values[WebhookDelivery.status],
        },
    )
    return next_at


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
    refusal = await _refused_target(claim.url) if block_internal else None
    if refusal is not None:
        status_code, error = None, refusal
    elif client is not None:
        status_code, error = await _send(client, claim)
    else:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as own:
            status_code, error = await _send(own, claim)
    duration_ms = round((time.perf_counter() - clock) * 1000)
    return await _record(delivery_id, claim, started, status_code, error, duration_ms)
