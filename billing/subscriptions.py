"""Subscriptions: created through Stripe, mirrored here, changed and cancelled."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from billing import (
    catalog,
    customers,
    entitlements,
    ordering,
    reservations,
    schemas,
    stripe_catalog,
)
from billing.exceptions import (
    PaymentDeclined,
    PlanNotFound,
    StripeRejected,
    SubscriptionConflict,
    SubscriptionNotFound,
)
from billing.stripe_gateway import StripeDict, gateway
from billing.tables import Customer, Subscription, SubscriptionHistory
from common import audit, leases
from common.clock import utcnow
from common.config import get_settings
from common.db import engine
from common.errors import Busy, InvalidRequest, UpstreamUnavailable
from common.ids import new_id
from common.money import Money

log = logging.getLogger("billing.subscriptions")

LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "paused")


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def to_schema(row: Subscription | dict[str, Any]) -> schemas.Subscription:
    r = row if isinstance(row, dict) else row.to_dict()
    return schemas.Subscription(
        id=r["id"],
        customer_id=r["customer_id"],
        plan=r["plan_code"],
        plan_version=r["plan_version"],
        interval=r["interval"],
        status=r["status"],
        collection_method=r["collection_method"],
        current_period_start=r["current_period_start"],
        current_period_end=r["current_period_end"],
        cancel_at_period_end=r["cancel_at_period_end"],
        canceled_at=r["canceled_at"],
        stripe_subscription_id=r["stripe_subscription_id"],
        created_at=r["created_at"],
    )


async def _sellable(code: str, interval: str) -> tuple[schemas.Plan, str]:
    plan = await catalog.get_plan(code)
    if plan.code == catalog.STANDARD or plan.monthly_price.amount == 0:
        raise InvalidRequest(f"{code!r} is the free fallback tier; it is not sold", field="plan")
    price_id = plan.stripe_price_ids.get(interval)
    if price_id is None:
        await stripe_catalog.sync_to_stripe()
        plan = await catalog.get_plan(code)
        price_id = plan.stripe_price_ids.get(interval)
    if price_id is None:
        raise PlanNotFound(f"plan {code!r} has no {interval} price in Stripe")
    return plan, price_id


async def current_row(customer_id: str) -> Subscription | None:
    """The customer's newest subscription that is live, else the newest at all."""
    rows = (
        await Subscription.objects()
        .where(Subscription.customer_id == customer_id)
        .order_by(Subscription.created_at, ascending=False)
        .limit(10)
    )
    rows = [r for r in rows if not _unsent(r)]  # reservations are nobody's subscription yet
    live = [r for r in rows if r.status in LIVE_STATUSES]
    candidates = live or rows
    return candidates[0] if candidates else None


async def get_current(customer_id: str) -> schemas.Subscription:
    await customers.get_row(customer_id)
    row = await current_row(customer_id)
    if row is None:
        raise SubscriptionNotFound(f"customer {customer_id!r} has no subscription")
    return to_schema(row)


def _unsent(row: Subscription) -> bool:
    """A reservation whose Stripe object (subscription or Checkout Session) is not known yet.

    ``stripe_lease_until`` is set from the reservation until the create is known to
    have finished; its value says until when the current attempt holds it.
    """
    return (
        row.stripe_lease_until is not None
        and row.stripe_subscription_id is None
        and row.stripe_checkout_session_id is None
    )


def _collection_method(mode: str) -> str:
    return "send_invoice" if mode == "send_invoice" else "charge_automatically"


async def create(
    customer_id: str, data: schemas.SubscriptionCreate, request_key: str | None = None
) -> schemas.SubscriptionCreated:
    """Subscribe the customer through Stripe, reaching Stripe once per subscription.

    The local row is reserved first, under the customer's row lock, so concurrent
    creates (one API process or several) cannot both call Stripe: the second sees the
    reservation and is told to come back. Stripe is then asked under a key derived
    from the reserved id; a create that died mid-way (unknown outcome: a timeout, a
    5xx after Stripe wrote, a killed process) is finished by the next identical
    request with that same key, and Stripe answers with what it already made.
    """
    cust = await customers.get_row(customer_id)
    plan, price_id = await _sellable(data.plan, data.interval)
    if cust.stripe_customer_id is None:
        raise InvalidRequest("the customer has no Stripe customer")
    method = None
    if data.mode == "charge_saved_method":
        method = await customers.require_saved_payment_method(cust)
    row = await _reserve(cust, plan, data, request_key)
    if not _unsent(row):  # this very request finished before (a retry after a lost answer)
        return await _created(row)
    metadata = {"subscription_id": row.id, "customer_id": customer_id, "plan_id": plan.id}
    session: StripeDict | None = None
    remote: StripeDict | None = None
    async with reservations.held(Subscription, row.id):
        try:
            if data.mode == "checkout":
                session = await gateway().checkout_subscription(
                    key=row.id,
                    stripe_customer_id=cust.stripe_customer_id,
                    price_id=price_id,
                    success_url=data.success_url or _default_url("billing/success"),
                    cancel_url=data.cancel_url or _default_url("billing/cancel"),
                    metadata=metadata,
                )
            else:
                remote = await gateway().create_subscription(
                    key=row.id,
                    stripe_customer_id=cust.stripe_customer_id,
                    price_id=price_id,
                    metadata=metadata,
                    send_invoice=data.mode == "send_invoice",
                    days_until_due=data.days_until_due,
                    payment_method=method,
                )
        except (StripeRejected, PaymentDeclined):
            # Stripe made nothing (a charge_automatically create that cannot be paid is
            # refused whole: payment_behavior=error_if_incomplete).
            await _forget(row.id)
            raise
        except UpstreamUnavailable:
            await reservations.lapse(Subscription, row.id)
            raise
    async with engine().transaction():
        if session is not None:
            await Subscription.update(
                {
                    Subscription.stripe_checkout_session_id: session["id"],
                    Subscription.stripe_lease_until: None,
                    Subscription.updated_at: utcnow(),
                }
            ).where(Subscription.id == row.id)
        if remote is not None:
            await Subscription.update({Subscription.stripe_lease_until: None}).where(
                Subscription.id == row.id
            )
            await apply_remote(remote, event_key=None)
    fresh = await Subscription.objects().where(Subscription.id == row.id).first()
    assert fresh is not None
    return schemas.SubscriptionCreated(
        subscription=to_schema(fresh), checkout_url=session.get("url") if session else None
    )


async def _reserve(
    cust: Customer, plan: schemas.Plan, data: schemas.SubscriptionCreate, request_key: str | None
) -> Subscription:
    """The customer's reserved row for this create (new, resumed, or already finished)."""
    now = utcnow()
    wanted = (plan.id, data.interval, _collection_method(data.mode))
    async with engine().transaction():
        # One create per customer at a time, across every API process.
        await Customer.raw("SELECT id FROM customer WHERE id = {} FOR UPDATE", cust.id)
        rows = (
            await Subscription.objects()
            .where(Subscription.customer_id == cust.id)
            .order_by(Subscription.created_at, ascending=False)
            .limit(20)
        )
        if request_key is not None:
            mine = next((r for r in rows if r.request_key == request_key), None)
            if mine is not None and not _unsent(mine):
                return mine
        for r in rows:
            if r.status in LIVE_STATUSES:
                raise SubscriptionConflict(
                    f"customer already has a {r.status} subscription {r.id}; "
                    "PATCH it to change plan"
                )
        for r in [r for r in rows if _unsent(r)]:
            if r.stripe_lease_until is not None and r.stripe_lease_until > now:
                raise Busy(
                    f"subscription {r.id} is being created for this customer",
                    retry_after=leases.retry_after(r.stripe_lease_until, now),
                )
            if (r.plan_id, r.interval, r.collection_method) == wanted:
                # The same create, died mid-way: finish it under its own Stripe key.
                r.stripe_lease_until = leases.until(now)
                r.request_key = request_key or r.request_key
                await r.save([Subscription.stripe_lease_until, Subscription.request_key])
                return r
            await _settle_abandoned(cust, r)
        row = Subscription(
            id=new_id("subs"),
            customer_id=cust.id,
            plan_id=plan.id,
            plan_code=plan.code,
            plan_version=plan.version,
            interval=data.interval,
            status="incomplete",
            collection_method=_collection_method(data.mode),
            stripe_lease_until=leases.until(now),
            request_key=request_key,
            created_at=now,
            updated_at=now,
        )
        await row.save()
        await audit.record(
            "subscription.created",
            "subscription",
            row.id,
            after={
                "plan": plan.code,
                "plan_version": plan.version,
                "interval": data.interval,
                "mode": data.mode,
            },
        )
    return row


async def _settle_abandoned(cust: Customer, row: Subscription) -> None:
    """An unfinished create for other terms, whose request died: learn what Stripe made.

    Charging creates are looked up in Stripe by the reserved id in their metadata: if
    Stripe made the subscription it is mirrored (and the new create then conflicts with
    it); if not, the reservation is dropped. A Checkout reservation moved no money and
    is dropped (a session completed later still arrives by webhook with its id).
    """
    if row.collection_method == "charge_automatically" or row.collection_method == "send_invoice":
        assert cust.stripe_customer_id is not None
        made = await gateway().find_subscription(cust.stripe_customer_id, row.id)
        if made is not None:
            await apply_remote(made, event_key=None)
            raise SubscriptionConflict(
                f"customer already has subscription {row.id} (its create finished in Stripe); "
                "PATCH it to change plan"
            )
    await Subscription.delete().where(
        (Subscription.id == row.id) & (Subscription.status == "incomplete")
    )
    await audit.record(
        "subscription.create_abandoned", "subscription", row.id, after={"reason": "superseded"}
    )


async def _created(row: Subscription) -> schemas.SubscriptionCreated:
    url = None
    if row.stripe_checkout_session_id is not None and row.status == "incomplete":
        session = await gateway().retrieve_checkout_session(row.stripe_checkout_session_id)
        url = session.get("url")
    return schemas.SubscriptionCreated(subscription=to_schema(row), checkout_url=url)


async def _forget(subscription_id: str) -> None:
    """Drop a reservation Stripe made nothing for (its webhook cannot arrive)."""
    async with engine().transaction():
        deleted = (
            await Subscription.delete()
            .where(
                (Subscription.id == subscription_id)
                & (Subscription.status == "incomplete")
                & Subscription.stripe_subscription_id.is_null()
            )
            .returning(Subscription.id)
        )
        if deleted:
            await audit.record(
                "subscription.create_refused", "subscription", subscription_id, after=None
            )


def _default_url(path: str) -> str:
    base = get_settings().public_base_url or "https://example.invalid"
    return f"{base.rstrip('/')}/{path}"


def _item(remote: StripeDict) -> dict[str, Any]:
    items = (remote.get("items") or {}).get("data") or []
    return items[0] if items else {}


def _price_id(remote: StripeDict) -> str | None:
    price = _item(remote).get("price")
    if isinstance(price, dict):
        return price.get("id")
    return price if isinstance(price, str) else None


def event_key(created: int, status: str, event_id: str) -> str:
    """The ordering key (``billing.ordering``) of an event about a subscription."""
    return ordering.event_key(created, ordering.SUBSCRIPTION_STAGES.get(status, 2), event_id)


async def apply_remote(remote: StripeDict, *, event_key: str | None) -> Subscription | None:
    """Mirror a Stripe subscription object; an older event never overwrites newer state.

    Call inside a transaction. ``event_key`` orders webhook events; None means the
    object came straight from Stripe's API (always newest at that moment).
    """
    meta = remote.get("metadata") or {}
    stripe_id = remote["id"]
    row = (
        await Subscription.objects().where(Subscription.stripe_subscription_id == stripe_id).first()
    )
    if row is None and meta.get("subscription_id"):
        row = await Subscription.objects().where(Subscription.id == meta["subscription_id"]).first()
    if row is not None:
        row = await Subscription.objects().where(Subscription.id == row.id).lock_rows().first()
        assert row is not None
    stored = row.stripe_event_key if row is not None else ""
    stage = ordering.SUBSCRIPTION_STAGES.get(remote.get("status", "active"), 2)
    key = ordering.api_key(stored, stage, utcnow()) if event_key is None else event_key
    stale = not ordering.applies(key, stored)
    price_id = _price_id(remote)
    plan = await catalog.plan_by_price(price_id) if price_id else None
    if plan is None and meta.get("plan_id"):
        plan = await catalog.plan_by_id(meta["plan_id"])
    if plan is None:
        log.warning("subscription %s has an unknown price %s", stripe_id, price_id)
        return row
    customer = await customers.by_stripe_id(remote["customer"]) if remote.get("customer") else None
    if row is None and customer is None:
        log.warning("subscription %s belongs to an unknown customer", stripe_id)
        return None
    item = _item(remote)
    interval = ((item.get("price") or {}).get("recurring") or {}).get("interval") or (
        row.interval if row else "month"
    )
    status = remote.get("status", "incomplete")
    if stale:
        assert row is not None
        # Too old for the current state, but still part of the story that ``?at=``
        # tells: record it in the history at its own instant.
        await SubscriptionHistory.insert(
            SubscriptionHistory(
                id=new_id("subh"),
                subscription_id=row.id,
                customer_id=row.customer_id,
                effective_at=ordering.key_time(key),
                plan_id=plan.id,
                status=status,
                interval=interval,
                current_period_start=_ts(item.get("current_period_start")),
                current_period_end=_ts(item.get("current_period_end")),
                past_due_since=ordering.key_time(key) if status == "past_due" else None,
            )
        )
        return row
    now = utcnow()
    before = to_schema(row) if row is not None else None
    if row is None:
        assert customer is not None
        row = Subscription(
            id=meta.get("subscription_id") or new_id("subs"),
            customer_id=customer.id,
            created_at=now,
        )
    past_due_since: datetime | None = row.past_due_since
    if status == "past_due" and past_due_since is None:
        past_due_since = ordering.key_time(key)
    elif status != "past_due":
        past_due_since = None
    row.plan_id, row.plan_code, row.plan_version = plan.id, plan.code, plan.version
    row.interval = interval
    row.status = status
    row.collection_method = remote.get("collection_method") or row.collection_method
    row.current_period_start = _ts(
        item.get("current_period_start") or remote.get("current_period_start")
    )
    row.current_period_end = _ts(item.get("current_period_end") or remote.get("current_period_end"))
    row.cancel_at_period_end = bool(remote.get("cancel_at_period_end"))
    row.canceled_at = _ts(remote.get("canceled_at"))
    row.past_due_since = past_due_since
    row.stripe_subscription_id = stripe_id
    row.stripe_lease_until = None  # whoever reserved it, the create has finished in Stripe
    row.stripe_item_id = item.get("id")
    row.stripe_event_key = key
    row.updated_at = now
    await row.save()
    after = to_schema(row)
    if before is None or _entitling(before) != _entitling(after):
        effective = ordering.key_time(key)
        await SubscriptionHistory.insert(
            SubscriptionHistory(
                id=new_id("subh"),
                subscription_id=row.id,
                customer_id=row.customer_id,
                effective_at=effective,
                plan_id=row.plan_id,
                status=row.status,
                interval=row.interval,
                current_period_start=row.current_period_start,
                current_period_end=row.current_period_end,
                past_due_since=row.past_due_since,
            )
        )
        await audit.record(
            "subscription.updated", "subscription", row.id, before=before, after=after
        )
        await entitlements.announce(
            row.customer_id,
            "subscription_changed",
            subscription_id=row.id,
            tier=row.plan_code,
            plan_version=row.plan_version,
            subscription_status=row.status,
        )
    return row


def _entitling(s: schemas.Subscription) -> tuple[Any, ...]:
    return (
        s.plan,
        s.plan_version,
        s.status,
        s.interval,
        s.current_period_start,
        s.current_period_end,
        s.cancel_at_period_end,
    )


async def _live_with_item(customer_id: str) -> tuple[Customer, Subscription]:
    cust = await customers.get_row(customer_id)
    row = await current_row(customer_id)
    if row is None:
        raise SubscriptionNotFound(f"customer {customer_id!r} has no subscription to change")
    if row.status not in LIVE_STATUSES or not row.stripe_subscription_id:
        # It exists but cannot change now (checkout pending, canceled): a state conflict.
        raise SubscriptionConflict(
            f"customer {customer_id!r} has no live subscription to change (it is {row.status})"
        )
    if row.stripe_item_id is None:
        remote = await gateway().retrieve_subscription(row.stripe_subscription_id)
        async with engine().transaction():
            refreshed = await apply_remote(remote, event_key=None)
        row = refreshed or row
    return cust, row


async def _change_target(
    customer_id: str, data: schemas.SubscriptionChange, proration_date: datetime | None
) -> tuple[Customer, Subscription, schemas.Plan, str, int]:
    """What a change (or its preview) starts from and goes to, and its proration second."""
    cust, row = await _live_with_item(customer_id)
    plan, price_id = await _sellable(data.plan, data.interval)
    if plan.id == row.plan_id and data.interval == row.interval:
        raise InvalidRequest("the subscription is already on that plan and interval", field="plan")
    return cust, row, plan, price_id, int((proration_date or utcnow()).timestamp())


def _operation_key(row: Subscription) -> str:
    """The Stripe idempotency key of one change or cancel request: its own, every time.

    The SDK's retries of the request reuse it. A key derived from the request's content
    (target plan, proration second) is shared by two different requests that happen to look
    alike, and Stripe answers the second with the first one's response without doing it:
    premium → business → premium, or cancel → change (uncancels) → cancel, would be
    reported done while Stripe kept the old state and billed by it.
    """
    return f"{row.id}-{new_id('op')}"


async def preview_change(
    customer_id: str, data: schemas.SubscriptionChange, proration_date: datetime | None = None
) -> schemas.ProrationPreview:
    cust, row, plan, price_id, when = await _change_target(customer_id, data, proration_date)
    assert row.stripe_subscription_id and row.stripe_item_id and cust.stripe_customer_id
    preview = await gateway().preview_change(
        stripe_customer_id=cust.stripe_customer_id,
        stripe_subscription_id=row.stripe_subscription_id,
        item_id=row.stripe_item_id,
        price_id=price_id,
        proration_date=when,
        reset_anchor=data.interval != row.interval,
    )
    lines = []
    prorations = 0
    for line in (preview.get("lines") or {}).get("data", []):
        parent = line.get("parent") or {}
        details = (
            parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
        )
        proration = bool(details.get("proration", line.get("proration", False)))
        period = line.get("period") or {}
        lines.append(
            schemas.ProrationLine(
                description=line.get("description") or "",
                amount=int(line.get("amount", 0)),
                proration=proration,
                period_start=_ts(period.get("start")),
                period_end=_ts(period.get("end")),
            )
        )
        if proration:
            prorations += int(line.get("amount", 0))
    currency = preview.get("currency", plan.currency)
    return schemas.ProrationPreview(
        customer_id=customer_id,
        from_plan=row.plan_code,
        to_plan=plan.code,
        interval=data.interval,
        proration_date=datetime.fromtimestamp(when, UTC),
        currency=currency,
        prorations=Money(prorations, currency),
        amount_due=Money(int(preview.get("amount_due", 0)), currency),
        lines=lines,
    )


async def change(
    customer_id: str, data: schemas.SubscriptionChange, proration_date: datetime | None = None
) -> schemas.Subscription:
    _, row, plan, price_id, when = await _change_target(customer_id, data, proration_date)
    assert row.stripe_subscription_id and row.stripe_item_id
    remote = await gateway().change_price(
        key=_operation_key(row),
        stripe_subscription_id=row.stripe_subscription_id,
        item_id=row.stripe_item_id,
        price_id=price_id,
        proration_date=when,
        metadata={"subscription_id": row.id, "customer_id": customer_id, "plan_id": plan.id},
        reset_anchor=data.interval != row.interval,
    )
    async with engine().transaction():
        updated = await apply_remote(remote, event_key=None)
    assert updated is not None
    return to_schema(updated)


async def cancel(customer_id: str, at_period_end: bool) -> schemas.Subscription:
    _, row = await _live_with_item(customer_id)
    assert row.stripe_subscription_id
    gw = gateway()
    key = _operation_key(row)
    remote = (
        await gw.cancel_at_period_end(row.stripe_subscription_id, key)
        if at_period_end
        else await gw.cancel_now(row.stripe_subscription_id, key)
    )
    async with engine().transaction():
        updated = await apply_remote(remote, event_key=None)
        await audit.record(
            "subscription.cancel_requested",
            "subscription",
            row.id,
            after={"at_period_end": at_period_end},
        )
    assert updated is not None
    return to_schema(updated)


async def portal_url(customer_id: str, return_url: str | None) -> schemas.PortalSession:
    cust = await customers.get_row(customer_id)
    if cust.stripe_customer_id is None:
        raise InvalidRequest("the customer has no Stripe customer")
    session = await gateway().portal_session(
        cust.stripe_customer_id, return_url or _default_url("account")
    )
    return schemas.PortalSession(url=session["url"])
