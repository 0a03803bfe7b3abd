"""The catalog in Stripe: a Product per sold plan version, month and year Prices.

Prices carry lookup keys ``<plan>_v<version>_<interval>``, so a second sync (or a
second process) finds what the first made instead of making it again.
"""

from __future__ import annotations

from billing import catalog
from billing.stripe_gateway import gateway
from billing.tables import Plan
from common import audit


def lookup_key(code: str, version: int, interval: str) -> str:
    return f"{code}_v{version}_{interval}"


async def sync_to_stripe() -> list[str]:
    """Make sure every sold plan version has a Product and month/year Prices in Stripe."""
    synced: list[str] = []
    rows = await Plan.objects().order_by(Plan.code).order_by(Plan.version)
    gw = gateway()
    for row in rows:
        if row.monthly_price == 0 and row.annual_price == 0:
            continue  # free tiers are the fallback, never sold
        keys = {i: lookup_key(row.code, row.version, i) for i in ("month", "year")}
        existing = await gw.prices_by_lookup_keys(list(keys.values()))
        product_id = row.stripe_product_id
        if product_id is None:
            found = next(iter(existing.values()), None)
            product_id = (
                found["product"]
                if found
                else (
                    await gw.create_product(
                        plan_id=row.id, code=row.code, name=f"{row.name} support (v{row.version})"
                    )
                )["id"]
            )
        price_ids: dict[str, str] = {}
        for interval, key in keys.items():
            price = existing.get(key) or await gw.create_price(
                product=product_id,
                currency=row.currency,
                unit_amount=row.monthly_price if interval == "month" else row.annual_price,
                interval=interval,
                lookup_key=key,
                plan_id=row.id,
            )
            price_ids[interval] = price["id"]
        if (row.stripe_product_id, row.stripe_price_month_id, row.stripe_price_year_id) != (
            product_id,
            price_ids["month"],
            price_ids["year"],
        ):
            await Plan.update(
                {
                    Plan.stripe_product_id: product_id,
                    Plan.stripe_price_month_id: price_ids["month"],
                    Plan.stripe_price_year_id: price_ids["year"],
                }
            ).where(Plan.id == row.id)
            await audit.record(
                "plan.synced", "plan", row.id, after={"product": product_id, **price_ids}
            )
        catalog.forget(row.id)
        synced.append(f"{row.code} v{row.version}")
    return synced
