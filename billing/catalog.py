"""The versioned plan catalog: create, new versions, the seed, and the Stripe sync."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from billing import schemas
from billing.exceptions import PlanConflict, PlanNotFound
from billing.tables import Plan
from common import audit
from common.clock import utcnow
from common.db import engine
from common.errors import InvalidRequest
from common.ids import new_id
from common.money import Money

log = logging.getLogger("billing.catalog")

STANDARD = "standard"
_FREE_FAST_TRACK_SENTINEL = 0


def _targets(row_targets: Any) -> dict[str, schemas.Target]:
    return {p: msgspec.convert(t, schemas.Target) for p, t in sorted(dict(row_targets).items())}


def to_schema(row: Plan | dict[str, Any]) -> schemas.Plan:
    r = row if isinstance(row, dict) else row.to_dict()
    currency = r["currency"]
    targets = r["targets"]
    if isinstance(targets, str):
        targets = msgspec.json.decode(targets)
    price_ids = {
        k: v
        for k, v in (("month", r["stripe_price_month_id"]), ("year", r["stripe_price_year_id"]))
        if v
    }
    return schemas.Plan(
        id=r["id"],
        code=r["code"],
        version=r["version"],
        name=r["name"],
        description=r["description"],
        currency=currency,
        monthly_price=Money(r["monthly_price"], currency),
        annual_price=Money(r["annual_price"], currency),
        targets=_targets(targets),
        included_incidents=r["included_incidents"],
        overage_price=None if r["overage_price"] is None else Money(r["overage_price"], currency),
        fast_track_price=(
            None if r["fast_track_price"] is None else Money(r["fast_track_price"], currency)
        ),
        fast_track_minutes=r["fast_track_minutes"],
        fast_track_included=r["fast_track_price"] == _FREE_FAST_TRACK_SENTINEL,
        credit_policy=schemas.CreditPolicy(r["credit_percent"], r["credit_cap_percent"]),
        is_current=r["is_current"],
        created_at=r["created_at"],
        stripe_product_id=r["stripe_product_id"],
        stripe_price_ids=price_ids,
    )


def _validate(data: schemas.PlanCreate) -> None:
    missing = [p for p in schemas.PRIORITIES if p not in data.targets]
    if missing:
        raise InvalidRequest(f"targets are missing for {', '.join(missing)}", field="targets")
    if data.fast_track_price is not None and data.fast_track_minutes is None:
        raise InvalidRequest(
            "fast_track_minutes is required when fast-track is sold or included",
            field="fast_track_minutes",
        )
    if data.credit_cap_percent < data.credit_percent:
        raise InvalidRequest(
            "credit_cap_percent must be at least credit_percent", field="credit_cap_percent"
        )


async def create_plan(data: schemas.PlanCreate) -> schemas.Plan:
    _validate(data)
    async with engine().transaction():
        if await Plan.exists().where(Plan.code == data.code):
            raise PlanConflict(f"plan {data.code!r} exists; PATCH it to make a new version")
        row = Plan(
            id=new_id("plan"),
            code=data.code,
            version=1,
            is_current=True,
            name=data.name,
            description=data.description,
            currency=data.currency,
            monthly_price=data.monthly_price,
            annual_price=data.annual_price,
            targets=msgspec.to_builtins(data.targets),
            included_incidents=data.included_incidents,
            overage_price=data.overage_price,
            fast_track_price=data.fast_track_price,
            fast_track_minutes=data.fast_track_minutes,
            credit_percent=data.credit_percent,
            credit_cap_percent=data.credit_cap_percent,
            created_at=utcnow(),
        )
        await row.save()
        plan = to_schema(row)
        await audit.record("plan.created", "plan", plan.id, after=plan)
    return plan


async def new_version(code: str, data: schemas.PlanUpdate) -> schemas.Plan:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    if not changes:
        raise InvalidRequest("nothing to change: send at least one field")
    async with engine().transaction():
        current = (
            await Plan.objects()
            .where(
                (Plan.code == code) & (Plan.is_current == True)  # noqa: E712 - SQL comparison
            )
            .first()
            .output(load_json=True)
        )
        if current is None:
            raise PlanNotFound(f"no plan {code!r}")
        before = to_schema(current)
        merged = msgspec.structs.asdict(
            msgspec.convert(
                {
                    **{k: v for k, v in current.to_dict().items() if k in _CREATE_FIELDS},
                    **msgspec.to_builtins(changes),
                },
                schemas.PlanCreate,
            )
        )
        candidate = msgspec.convert(msgspec.to_builtins(merged), schemas.PlanCreate)
        _validate(candidate)
        await Plan.update({Plan.is_current: False}).where(Plan.id == current.id)
        row = Plan(
            id=new_id("plan"),
            version=current.version + 1,
            is_current=True,
            created_at=utcnow(),
            **{k: merged[k] for k in _CREATE_FIELDS},
        )
        row.targets = msgspec.to_builtins(candidate.targets)
        await row.save()
        plan = to_schema(row)
        await audit.record("plan.versioned", "plan", plan.id, before=before, after=plan)
    return plan


_CREATE_FIELDS = tuple(f for f in schemas.PlanCreate.__struct_fields__)


async def list_current() -> list[schemas.Plan]:
    rows = (
        await Plan.select()
        .where(Plan.is_current == True)  # noqa: E712 - a SQL comparison, not a truth test
        .order_by(Plan.monthly_price)
        .output(load_json=True)
    )
    return [to_schema(r) for r in rows]


async def get_plan(code: str, version: int | None = None) -> schemas.Plan:
    query = Plan.select().where(Plan.code == code)
    query = (
        query.where(Plan.version == version)
        if version is not None
        else query.where(Plan.is_current == True)  # noqa: E712
    )
    row = await query.first().output(load_json=True)
    if row is None:
        suffix = f" version {version}" if version is not None else ""
        raise PlanNotFound(f"no plan {code!r}{suffix}")
    return to_schema(row)


# Plan versions are immutable once written (a change makes a new row), so a
# process may keep them; only the Stripe ids are filled in later by the sync.
_by_id: dict[str, schemas.Plan] = {}


async def plan_by_id(plan_id: str) -> schemas.Plan:
    cached = _by_id.get(plan_id)
    if cached is not None:
        return cached
    row = await Plan.select().where(Plan.id == plan_id).first().output(load_json=True)
    if row is None:
        raise PlanNotFound(f"no plan version {plan_id!r}")
    plan = to_schema(row)
    _by_id[plan_id] = plan
    return plan


async def plan_by_price(price_id: str) -> schemas.Plan | None:
    row = (
        await Plan.select()
        .where((Plan.stripe_price_month_id == price_id) | (Plan.stripe_price_year_id == price_id))
        .first()
        .output(load_json=True)
    )
    return None if row is None else to_schema(row)


def forget(plan_id: str) -> None:
    """Drop a plan from the by-id cache (its Stripe ids changed)."""
    _by_id.pop(plan_id, None)
