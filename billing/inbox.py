"""The Stripe inbox: verify, store each event once, then apply it in a job.

Deliveries (``verify``) and the catch-up (``billing.catchup``) store events here; a job
applies each (``process``) by handing its object to the module that mirrors it:
subscriptions, fast-track purchases, customers, or the finance mirror (``billing.mirror``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import stripe

from billing import customers, fasttrack, mirror, subscriptions
from billing.exceptions import InvalidEvent
from billing.stripe_gateway import gateway
from billing.tables import Customer, StripeEvent
from common.audit import acting_as
from common.clock import utcnow
from common.db import engine

log = logging.getLogger("billing.events")

TOLERANCE_SECONDS = 300
MAX_AUTOMATIC_ATTEMPTS = 10


# What the inbox can hold: the columns' sizes, and a tree jsonb and our code can walk.
MAX_ID_LENGTH = 100
MAX_TYPE_LENGTH = 100
MAX_DEPTH = 64
MAX_CREATED = 2**63 - 1


@dataclass(frozen=True)
class Inbound:
    """A signed delivery as stored: the raw body, and the event when it can be applied.

    ``problem`` says why it cannot (not JSON, no usable id/type/created, a NUL character
    that jsonb cannot hold, nesting too deep): such an event is stored *dead*, answered 2xx
    so that Stripe stops retrying, and waits for an operator (``stripe replay``).
    """

    id: str
    type: str
    created: int
    raw: bytes
    event: dict[str, Any] | None
    problem: str | None


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _problem(event: Any) -> str | None:
    """Why a decoded event cannot be applied, or None."""
    if not isinstance(event, dict):
        return "the body is not a JSON object"
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.startswith("evt_"):
        return "id is not an evt_ string"
    if len(event_id) > MAX_ID_LENGTH or "\x00" in event_id:
        return f"id is longer than {MAX_ID_LENGTH} characters or holds NUL"
    kind = event.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > MAX_TYPE_LENGTH or "\x00" in kind:
        return f"type is not a string of 1 to {MAX_TYPE_LENGTH} characters"
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created <= MAX_CREATED:
        return "created is not a non-negative 64-bit integer"
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "data.object is not an object"
    if not _depth_ok(event, MAX_DEPTH):
        return f"nested deeper than {MAX_DEPTH} levels"
    if _has_nul(event):
        return "a string holds a NUL character (PostgreSQL cannot store it)"
    return None


def parse(raw: bytes) -> Inbound:
    """The stored form of a delivery, whatever its body: never raises."""
    event: Any = None
    try:
        event = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        problem: str | None = "the body is not JSON (or nests too deep to decode)"
    else:
        problem = _problem(event)
    if problem is None:
        return Inbound(event["id"], event["type"], event["created"], raw, event, None)
    # An id of its own (the body's digest): a redelivery of the same body is a duplicate.
    fallback = "invalid_" + hashlib.sha256(raw).hexdigest()[:48]
    return Inbound(fallback, "", 0, raw, None, problem)


def _check_time(signature: str) -> None:
    """Refuse a signature dated further in the future than the tolerance (the SDK only
    bounds its age)."""
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and int(value) > time.time() + TOLERANCE_SECONDS:
            raise InvalidEvent(
                "bad Stripe signature: its timestamp is in the future", field="Stripe-Signature"
            )


def verify(payload: bytes, signature: str | None, secret: str) -> Inbound:
    """The delivery in ``payload`` if Stripe signed it with ``secret`` within the tolerance.

    Only the signature decides: a signed body that cannot be applied comes back with its
    ``problem`` set, to be stored dead rather than refused (Stripe would retry it forever).
    """
    if not signature:
        raise InvalidEvent("missing Stripe-Signature header", field="Stripe-Signature")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidEvent("the body is not UTF-8 JSON") from e
    try:
        # Only the signature check: building SDK objects for every delivery costs more
        # than the rest of the ingest together.
        stripe.WebhookSignature.verify_header(text, signature, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as e:
        raise InvalidEvent(
            f"bad Stripe signature: {e.user_message or e}", field="Stripe-Signature"
        ) from e
    _check_time(signature)
    return parse(payload)


async def store(event: dict[str, Any] | Inbound, raw: bytes | None = None) -> bool:
    """Keep the delivery; False when this id was already received (a duplicate).

    The raw body is kept as received; the parsed copy (``payload``) only for an event that
    can be applied. One that cannot is stored dead with its problem as the last error.
    """
    if not isinstance(event, Inbound):
        event = parse(raw if raw is not None else msgspec.json.encode(event))
    now = utcnow()
    inserted = await StripeEvent.raw(
        "INSERT INTO stripe_event"
        " (id, type, created, body, payload, received_at, attempts, dead_at, last_error)"
        " VALUES ({}, {}, {}, {}, {}::jsonb, {}, 0, {}, {})"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        event.id,
        event.type,
        event.created,
        event.raw,
        None if event.event is None else msgspec.json.encode(event.event).decode(),
        now,
        None if event.problem is None else now,
        event.problem,
    )
    if inserted and event.problem is not None:
        log.warning("stripe delivery stored dead: %s", event.problem, extra={"event_id": event.id})
    return bool(inserted)


def _ts(value: Any) -> datetime | None:
    return None if value in (None, 0) else datetime.fromtimestamp(int(value), UTC)


async def process(event_id: str) -> str:
    """Apply one stored event; safe to run twice and in any order."""
    outcome: str
    try:
        async with engine().transaction():
            row = (
                await StripeEvent.objects()
                .where(StripeEvent.id == event_id)
                .lock_rows(skip_locked=True)
                .output(load_json=True)
                .first()
            )
            if row is None:
                return "missing-or-busy"
            if row.processed_at is not None:
                return "already-processed"
            if row.dead_at is not None:
                return "dead"
            payload = row.payload
            if payload is None:  # stored dead, now replayed: parse the raw body again
                parsed = parse(bytes(row.body or b""))
                if parsed.problem is not None:
                    raise InvalidEvent(parsed.problem)
                payload = parsed.event
            with acting_as(f"stripe:{event_id}"):
                outcome = await _apply(payload)
            await StripeEvent.update(
                {
                    StripeEvent.attempts: row.attempts + 1,
                    StripeEvent.processed_at: utcnow(),
                    StripeEvent.last_error: None,
                }
            ).where(StripeEvent.id == event_id)
    except POISON as e:
        # Signed by Stripe but not applicable as it is (a malformed amount, a missing
        # field): retrying cannot help. Dead until an operator replays it after a fix.
        log.warning("stripe event %s is dead: %r", event_id, e, extra={"event_id": event_id})
        await StripeEvent.update(
            {
                StripeEvent.attempts: StripeEvent.attempts + 1,
                StripeEvent.last_error: repr(e)[:2000],
                StripeEvent.dead_at: utcnow(),
            }
        ).where(StripeEvent.id == event_id)
        return "dead"
    except Exception as e:
        # The transaction rolled back; the failure is recorded on its own for replay.
        log.exception("stripe event %s failed", event_id)
        await StripeEvent.update(
            {
                StripeEvent.attempts: StripeEvent.attempts + 1,
                StripeEvent.last_error: repr(e)[:2000],
            }
        ).where(StripeEvent.id == event_id)
        raise
    return outcome


# Failures that are the event's own (its data), not the moment's (a database or Stripe
# outage): the first makes it dead, the second is retried.
POISON: tuple[type[BaseException], ...] = (
    InvalidEvent,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
    asyncpg.exceptions.DataError,
)


async def _apply(event: dict[str, Any]) -> str:
    kind: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    stripe_customer = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if stripe_customer:
        # Events about one customer's objects apply one at a time (concurrent jobs would
        # otherwise race to insert the same mirror row).
        await Customer.raw(
            "SELECT id FROM customer WHERE stripe_customer_id = {} FOR UPDATE", stripe_customer
        )
    if isinstance(obj.get("id"), str):
        # And events about one object, whoever its customer (one we do not know has no row
        # to lock): two jobs never race to mirror the same invoice or credit note.
        await Customer.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", obj["id"])
    key = subscriptions.event_key(int(event.get("created", 0)), obj.get("status", ""), event["id"])
    if kind.startswith("customer.subscription."):
        await subscriptions.apply_remote(obj, event_key=key)
        await mirror.link_subscription(obj.get("id"))
        await _remember_saved_card(obj, "default_payment_method")
        return "subscription"
    if kind == "checkout.session.completed":
        return await _checkout_completed(obj, key)
    if kind.startswith("invoice."):
        await mirror.invoice(obj, int(event.get("created", 0)), event["id"])
        return "invoice"
    if kind.startswith("payment_intent."):
        await mirror.payment_intent(obj, int(event.get("created", 0)), event["id"])
        await fasttrack.apply_payment_intent(obj)
        if obj.get("status") == "succeeded" and obj.get("setup_future_usage"):
            # Paid with `setup_future_usage`: Stripe attached the card for later use.
            await _remember_saved_card(obj, "payment_method")
        return "payment_intent"
    if kind in ("credit_note.created", "credit_note.updated", "credit_note.voided"):
        await mirror.credit_note(obj, int(event.get("created", 0)), event["id"])
        return "credit_note"
    if kind in ("refund.created", "refund.updated", "refund.failed"):
        await mirror.refund(obj, int(event.get("created", 0)), event["id"])
        return "refund"
    if kind in ("charge.succeeded", "charge.refunded"):
        await mirror.charge(obj)
        return "charge"
    if kind == "customer.created":
        # Ours, when its create answered nothing we could read (a reservation left
        # waiting for a retry that never came): the reservation is finished here.
        adopted = await customers.adopt_stripe_customer(obj)
        return "customer" if adopted else "ignored"
    if kind == "customer.updated":
        method = (obj.get("invoice_settings") or {}).get("default_payment_method")
        if isinstance(method, str):
            await customers.remember_payment_method(obj["id"], method, utcnow())
        return "customer"
    return "ignored"


async def _checkout_completed(session: dict[str, Any], key: str) -> str:
    meta = session.get("metadata") or {}
    if session.get("mode") == "payment" or meta.get("kind") == "fast_track":
        await fasttrack.complete_checkout(session)
        return "fast_track"
    sub_ref = session.get("subscription")
    if isinstance(sub_ref, dict):
        await subscriptions.apply_remote(sub_ref, event_key=key)
        await mirror.link_subscription(sub_ref)
        await _remember_saved_card(sub_ref, "default_payment_method")
    elif isinstance(sub_ref, str):
        # The session carries only the id; Stripe's object is the truth right now.
        remote = await gateway().retrieve_subscription(sub_ref)
        await subscriptions.apply_remote(remote, event_key=None)
        await mirror.link_subscription(remote)
        # Checkout leaves the card as the subscription's default, not the customer's.
        await _remember_saved_card(remote, "default_payment_method")
    return "subscription"


async def _remember_saved_card(obj: dict[str, Any], field: str) -> None:
    method = obj.get(field)
    if isinstance(method, dict):
        method = method.get("id")
    stripe_customer = obj.get("customer")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if isinstance(method, str) and isinstance(stripe_customer, str):
        await customers.remember_payment_method_if_unset(stripe_customer, method, utcnow())


async def pending(limit: int = 500, min_age_seconds: int = 10) -> list[tuple[str, int]]:
    """Events received a while ago and still not applied, with their attempt counts."""
    from datetime import timedelta

    rows = (
        await StripeEvent.select(StripeEvent.id, StripeEvent.attempts)
        .where(
            StripeEvent.processed_at.is_null()
            & (StripeEvent.received_at < utcnow() - timedelta(seconds=min_age_seconds))
            # After this many failures an event waits for `support-billing stripe replay`.
            & (StripeEvent.attempts < MAX_AUTOMATIC_ATTEMPTS)
            # A dead event waits for an operator: retrying it cannot help.
            & StripeEvent.dead_at.is_null()
        )
        .order_by(StripeEvent.created)
        .limit(limit)
    )
    return [(str(r["id"]), int(r["attempts"])) for r in rows]


async def dead(limit: int = 100) -> list[dict[str, Any]]:
    """Dead events, newest first: what an operator looks at before a replay."""
    rows: list[dict[str, Any]] = (
        await StripeEvent.select(
            StripeEvent.id,
            StripeEvent.type,
            StripeEvent.received_at,
            StripeEvent.dead_at,
            StripeEvent.attempts,
            StripeEvent.last_error,
        )
        .where(StripeEvent.dead_at.is_not_null())
        .order_by(StripeEvent.dead_at, ascending=False)
        .limit(limit)
    )
    return rows


async def mark_for_replay(event_ids: list[str] | None, failed_only: bool) -> list[str]:
    """Reset chosen (or all failed) events so their jobs apply them again."""
    query = StripeEvent.update({StripeEvent.processed_at: None, StripeEvent.dead_at: None})
    if event_ids:
        query = query.where(StripeEvent.id.is_in(event_ids))
    elif failed_only:
        query = query.where(
            StripeEvent.last_error.is_not_null() | StripeEvent.dead_at.is_not_null()
        )
    else:
        raise ValueError("name events or ask for the failed ones")
    rows = await query.returning(StripeEvent.id)
    return [str(r["id"]) for r in rows]
