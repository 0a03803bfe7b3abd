"""Customers: created here and in Stripe, looked up by our id or the helpdesk's."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import datetime
from typing import Any

import msgspec

from billing import reservations, schemas
from billing.exceptions import CustomerConflict, CustomerNotFound, NoPaymentMethod, StripeRejected
from billing.stripe_gateway import gateway
from billing.tables import Customer
from common import audit, leases
from common.clock import utcnow
from common.db import engine
from common.errors import Busy, InvalidRequest, UpstreamUnavailable
from common.ids import new_id

log = logging.getLogger("billing.customers")


def to_schema(row: Customer | dict[str, Any]) -> schemas.Customer:
    r = row if isinstance(row, dict) else row.to_dict()
    hours = r["business_hours"]
    if isinstance(hours, str):
        hours = msgspec.json.decode(hours)
    return schemas.Customer(
        id=r["id"],
        external_id=r["external_id"],
        name=r["name"],
        email=r["email"],
        timezone=r["timezone"],
        country=r["country"],
        business_hours=hours,
        stripe_customer_id=r["stripe_customer_id"],
        has_payment_method=r["default_payment_method"] is not None,
        created_at=r["created_at"],
    )


def _validate(data: schemas.CustomerCreate) -> None:
    # The calendar's own rules (business hours, a holiday country) are the SLA engine's,
    # checked at the API by ``sla.service.check_calendar``; a timezone is plain IANA.
    try:
        zoneinfo.ZoneInfo(data.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown IANA timezone {data.timezone!r}", field="timezone") from None


def _same_request(row: Customer, data: schemas.CustomerCreate) -> bool:
    stored: tuple[Any, ...] = (row.name, row.email, row.timezone, row.country, row.business_hours)
    return stored == (
        data.name,
        data.email,
        data.timezone,
        data.country,
        data.business_hours,
    )


async def create_customer(
    data: schemas.CustomerCreate, request_key: str | None = None
) -> schemas.Customer:
    """Create the customer here and in Stripe, exactly once per ``external_id``.

    The row is reserved first (``external_id`` is unique) and only its holder asks
    Stripe, under a key derived from the reserved id: concurrent creates cannot both
    reach Stripe, and a create that died mid-way is finished by the next identical
    request with the same key, so Stripe answers with the customer it already made.
    """
    _validate(data)
    now = utcnow()
    lease = leases.until(now)
    reserved: list[dict[str, Any]] = await Customer.raw(
        "INSERT INTO customer (id, external_id, name, email, timezone, country, business_hours,"
        " stripe_lease_until, request_key, created_at, updated_at)"
        " VALUES ({}, {}, {}, {}, {}, {}, {}::jsonb, {}, {}, {}, {})"
        " ON CONFLICT (external_id) DO NOTHING RETURNING id",
        new_id("cust"),
        data.external_id,
        data.name,
        data.email,
        data.timezone,
        data.country,
        None if data.business_hours is None else msgspec.json.encode(data.business_hours).decode(),
        lease,
        request_key,
        now,
        now,
    )
    if reserved:
        found = (
            await Customer.objects()
            .where(Customer.id == reserved[0]["id"])
            .output(load_json=True)
            .first()
        )
        assert found is not None
        row = found
    else:
        row = await _resume(data, request_key, now)
        if row.stripe_customer_id is not None:  # the same request, already finished
            return to_schema(row)
    async with reservations.held(Customer, row.id):
        try:
            remote = await gateway().create_customer(
                customer_id=row.id, external_id=row.external_id, name=row.name, email=row.email
            )
        except StripeRejected:
            # Nothing was created in Stripe: the reservation goes, the id is free again.
            await Customer.delete().where(
                (Customer.id == row.id) & Customer.stripe_customer_id.is_null()
            )
            raise
        except UpstreamUnavailable:
            # Unknown outcome: the row stays reserved for a retry to finish.
            await reservations.lapse(Customer, row.id)
            raise
    async with engine().transaction():
        await Customer.update(
            {
                Customer.stripe_customer_id: remote["id"],
                Customer.stripe_lease_until: None,
                Customer.updated_at: utcnow(),
            }
        ).where(Customer.id == row.id)
        row.stripe_customer_id = remote["id"]
        customer = to_schema(row)
        await audit.record("customer.created", "customer", customer.id, after=customer)
    return customer


async def _resume(data: schemas.CustomerCreate, request_key: str | None, now: datetime) -> Customer:
    """The existing row for ``data.external_id``, when this request may finish it."""
    existing = (
        await Customer.objects()
        .where(Customer.external_id == data.external_id)
        .output(load_json=True)
        .first()
    )
    conflict = CustomerConflict(f"a customer with external_id {data.external_id!r} exists")
    if existing is None:  # reserved and given up between the two statements
        raise Busy("this customer is being created; try again", retry_after=1)
    if existing.stripe_customer_id is not None:
        if request_key is not None and existing.request_key == request_key:
            return existing
        raise conflict
    if not _same_request(existing, data):
        raise conflict
    if not await reservations.take(Customer, existing.id, now):
        raise Busy(
            f"a customer with external_id {data.external_id!r} is being created",
            retry_after=leases.retry_after(existing.stripe_lease_until, now),
        )
    return existing


async def adopt_stripe_customer(remote: dict[str, Any]) -> bool:
    """Finish a reserved customer from the Stripe customer made for it (by its metadata)."""
    customer_id = (remote.get("metadata") or {}).get("customer_id")
    if not isinstance(customer_id, str) or not isinstance(remote.get("id"), str):
        return False
    async with engine().transaction():
        adopted = await Customer.raw(
            "UPDATE customer SET stripe_customer_id = {}, stripe_lease_until = NULL,"
            " updated_at = {} WHERE id = {} AND stripe_customer_id IS NULL RETURNING id",
            remote["id"],
            utcnow(),
            customer_id,
        )
        if adopted:
            row = await get_row(customer_id)
            await audit.record("customer.created", "customer", row.id, after=to_schema(row))
    return bool(adopted)


# A reserved row whose Stripe customer is not made yet is nobody's customer so far: a
# create that failed with an unknown outcome leaves one behind for its retry to finish.
_VISIBLE = Customer.stripe_customer_id.is_not_null() | Customer.stripe_lease_until.is_null()


async def get_row(customer_id: str) -> Customer:
    row: Customer | None = (
        await Customer.objects()
        .where((Customer.id == customer_id) & _VISIBLE)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise CustomerNotFound(f"no customer {customer_id!r}")
    return row


async def get_customer(customer_id: str) -> schemas.Customer:
    return to_schema(await get_row(customer_id))


async def find_by_external_id(external_id: str) -> list[schemas.Customer]:
    rows = (
        await Customer.select()
        .where((Customer.external_id == external_id) & _VISIBLE)
        .output(load_json=True)
    )
    return [to_schema(r) for r in rows]


async def list_customers(
    limit: int, starting_after: str | None
) -> tuple[list[schemas.Customer], bool]:
    query = (
        Customer.select()
        .where(_VISIBLE)
        .order_by(Customer.id)
        .limit(limit + 1)
        .output(load_json=True)
    )
    if starting_after:
        query = query.where(Customer.id > starting_after)
    rows = await query
    return [to_schema(r) for r in rows[:limit]], len(rows) > limit


async def by_stripe_id(stripe_customer_id: str) -> Customer | None:
    return await Customer.objects().where(Customer.stripe_customer_id == stripe_customer_id).first()


async def saved_payment_method(row: Customer) -> str | None:
    """The customer's saved card, asking Stripe where it keeps one when we have not seen it.

    Stripe keeps it as the customer's invoice default when set explicitly, but a Checkout
    only attaches the card to the customer (and makes it the subscription's default):
    so the customer's attached cards are the fallback, newest first.
    """
    if row.default_payment_method:
        return row.default_payment_method
    if row.stripe_customer_id is None:
        return None
    remote = await gateway().retrieve_customer(row.stripe_customer_id)
    method = (remote.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(method, dict):
        method = method.get("id")
    if not method:
        cards = await gateway().card_payment_methods(row.stripe_customer_id)
        method = cards[0].get("id") if cards else None
    if method:
        await Customer.update({Customer.default_payment_method: method}).where(
            Customer.id == row.id
        )
        row.default_payment_method = method
    return method if isinstance(method, str) else None


async def require_saved_payment_method(row: Customer) -> str:
    """The saved payment method for an off-session charge, or a clear refusal."""
    method = await saved_payment_method(row)
    if method is None:
        raise NoPaymentMethod(
            "the customer has no saved payment method; use mode=checkout", field="mode"
        )
    return method


async def remember_payment_method_if_unset(
    stripe_customer_id: str, method: str, at: datetime
) -> None:
    """Keep a card Stripe saved for the customer (a subscription's, a Checkout payment's)
    unless one is known already: an explicit customer default always wins."""
    await Customer.update({Customer.default_payment_method: method, Customer.updated_at: at}).where(
        (Customer.stripe_customer_id == stripe_customer_id)
        & Customer.default_payment_method.is_null()
    )


async def remember_payment_method(stripe_customer_id: str, method: str, at: datetime) -> None:
    await Customer.update({Customer.default_payment_method: method, Customer.updated_at: at}).where(
        Customer.stripe_customer_id == stripe_customer_id
    )
