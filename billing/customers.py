"""Customers: created here and in Stripe, looked up by our id or the helpdesk's."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

import msgspec

from billing import schemas
from billing.exceptions import CustomerConflict, CustomerNotFound, NoPaymentMethod
from billing.stripe_gateway import gateway
from billing.tables import Customer
from common import audit
from common.clock import utcnow
from common.db import engine
from common.errors import InvalidRequest
from common.ids import new_id
from sla.calendar import InvalidSchedule, Schedule, country_holidays


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
    try:
        zoneinfo.ZoneInfo(data.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown IANA timezone {data.timezone!r}", field="timezone") from None
    if data.country is not None:
        try:
            country_holidays(data.country, [utcnow().year])
        except InvalidSchedule as e:
            raise InvalidRequest(str(e), field="country") from e
    if data.business_hours is not None:
        try:
            Schedule.from_spec(data.timezone, data.business_hours)
        except InvalidSchedule as e:
            raise InvalidRequest(str(e), field="business_hours") from e


async def create_customer(data: schemas.CustomerCreate) -> schemas.Customer:
    _validate(data)
    if await Customer.exists().where(Customer.external_id == data.external_id):
        raise CustomerConflict(f"a customer with external_id {data.external_id!r} exists")
    customer_id = new_id("cust")
    stripe_customer = await gateway().create_customer(
        customer_id=customer_id, external_id=data.external_id, name=data.name, email=data.email
    )
    row = Customer(
        id=customer_id,
        external_id=data.external_id,
        name=data.name,
        email=data.email,
        timezone=data.timezone,
        country=data.country,
        business_hours=data.business_hours,
        stripe_customer_id=stripe_customer["id"],
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    customer = to_schema(row)
    try:
        async with engine().transaction():
            await row.save()
            await audit.record("customer.created", "customer", customer.id, after=customer)
    except Exception as e:  # a concurrent create with the same external_id won the race
        if await Customer.exists().where(Customer.external_id == data.external_id):
            raise CustomerConflict(
                f"a customer with external_id {data.external_id!r} exists"
            ) from e
        raise
    return customer


async def get_row(customer_id: str) -> Customer:
    row: Customer | None = (
        await Customer.objects().where(Customer.id == customer_id).first().output(load_json=True)
    )
    if row is None:
        raise CustomerNotFound(f"no customer {customer_id!r}")
    return row


async def get_customer(customer_id: str) -> schemas.Customer:
    return to_schema(await get_row(customer_id))


async def find_by_external_id(external_id: str) -> list[schemas.Customer]:
    rows = await Customer.select().where(Customer.external_id == external_id).output(load_json=True)
    return [to_schema(r) for r in rows]


async def list_customers(
    limit: int, starting_after: str | None
) -> tuple[list[schemas.Customer], bool]:
    query = Customer.select().order_by(Customer.id).limit(limit + 1).output(load_json=True)
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
