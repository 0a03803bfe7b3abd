"""What a customer is entitled to at an instant: plan in force, allowance, fast-track."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from billing import catalog, entitlement_cache, schemas
from billing.exceptions import CustomerNotFound
from billing.tables import Customer, Subscription
from common.clock import utcnow
from common.config import get_settings
from common.db import engine
from common.money import Money
from webhooks import outbox

GRANTING = ("active", "trialing")

# The hot path in one round trip: the customer, its live subscription, the incidents
# counted in the subscription's period (else the calendar month) and the unexpired
# fast-track balance at {now}.
_NOW_SQL = """
SELECT c.id AS customer_id, s.id AS subscription_id, s.plan_id, s.status,
       s.current_period_start, s.current_period_end, s.past_due_since,
       (SELECT count(*) FROM incident_usage u
         WHERE u.customer_id = c.id
           AND u.opened_at >= coalesce(s.current_period_start, {month_start})
           AND u.opened_at < coalesce(s.current_period_end, {month_end})) AS used,
       (SELECT coalesce(sum(l.delta), 0) FROM fast_track_ledger l
          JOIN fast_track_purchase p ON p.id = l.purchase_id
         WHERE l.customer_id = c.id AND l.created_at <= {now} AND p.expires_at > {now})
         AS credits,
       (SELECT min(p.expires_at) FROM fast_track_purchase p
         WHERE p.customer_id = c.id AND p.expires_at > {now}) AS next_expiry
FROM customer c
LEFT JOIN LATERAL (
    SELECT id, plan_id, status, current_period_start, current_period_end, past_due_since
    FROM subscription WHERE customer_id = c.id AND status <> 'incomplete'
    ORDER BY (status IN ('active', 'trialing', 'past_due')) DESC, created_at DESC LIMIT 1
) s ON true
WHERE c.id = {customer}
"""
# Piccolo's raw() takes positional {} placeholders in order of appearance.
_NOW_ORDER = tuple(token.split("}", 1)[0] for token in _NOW_SQL.split("{")[1:])
_NOW_SQL_POSITIONAL = _NOW_SQL
_NOW_SQL_ASYNCPG = _NOW_SQL
for _n, _name in enumerate(("month_start", "month_end", "now", "customer"), start=1):
    _NOW_SQL_POSITIONAL = _NOW_SQL_POSITIONAL.replace("{" + _name + "}", "{}")
    _NOW_SQL_ASYNCPG = _NOW_SQL_ASYNCPG.replace("{" + _name + "}", f"${_n}")

_HISTORY_SQL = """
SELECT c.id AS customer_id, h.subscription_id, h.plan_id, h.status,
       h.current_period_start, h.current_period_end, h.past_due_since
FROM customer c
LEFT JOIN LATERAL (
    SELECT subscription_id, plan_id, status, current_period_start, current_period_end,
           past_due_since
    FROM subscription_history WHERE customer_id = c.id AND effective_at <= {}
    ORDER BY effective_at DESC, id DESC LIMIT 1
) h ON true
WHERE c.id = {}
"""

_COUNTS_SQL = """
SELECT
  (SELECT count(*) FROM incident_usage
    WHERE customer_id = {} AND opened_at >= {} AND opened_at < {}) AS used,
  (SELECT coalesce(sum(l.delta), 0) FROM fast_track_ledger l
     JOIN fast_track_purchase p ON p.id = l.purchase_id
    WHERE l.customer_id = {} AND l.created_at <= {} AND p.expires_at > {}) AS credits
"""


def _month_bounds(at: datetime) -> tuple[datetime, datetime]:
    start = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


async def _fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    # Through Piccolo so the query joins the caller's transaction when there is one.
    rows: list[dict[str, Any]] = await Customer.raw(sql, *args)
    return rows


async def _fetch_now(customer_id: str, month: tuple[datetime, datetime], now: datetime) -> Any:
    """The hot read straight on asyncpg (a prepared statement), unless a transaction is open."""
    db = engine()
    pool = db.pool
    if pool is None or db.current_transaction.get() is not None:
        values = {
            "month_start": month[0],
            "month_end": month[1],
            "now": now,
            "customer": customer_id,
        }
        rows = await _fetch(_NOW_SQL_POSITIONAL, *(values[n] for n in _NOW_ORDER))
        return rows[0] if rows else None
    async with pool.acquire() as conn:
        return await conn.fetchrow(_NOW_SQL_ASYNCPG, month[0], month[1], now, customer_id)


def grace_period() -> timedelta:
    """How long a ``past_due`` subscription keeps its plan (``PAST_DUE_GRACE_DAYS``)."""
    return timedelta(days=get_settings().past_due_grace_days)


def _grants_plan(status: str | None, past_due_since: datetime | None, at: datetime) -> bool:
    if status in GRANTING:
        return True
    if status == "past_due":
        return past_due_since is None or at < past_due_since + grace_period()
    return False


_standard: tuple[float, schemas.Plan] | None = None


async def standard_plan() -> schemas.Plan:
    """The current standard tier; kept a few seconds (a new version shows up after that)."""
    global _standard
    now = time.monotonic()
    if _standard is None or _standard[0] < now:
        _standard = (now + 5.0, await catalog.get_plan(catalog.STANDARD))
    return _standard[1]


async def entitlement(customer_id: str, at: datetime | None = None) -> schemas.Entitlement:
    """What the customer may expect at ``at`` (default now; then from the process's cache
    when it holds a true answer, see ``billing.entitlement_cache``)."""
    now = utcnow()
    cacheable = at is None and engine().current_transaction.get() is None
    if cacheable:
        cached = entitlement_cache.cache.get(customer_id, now)
        if cached is not None:
            return cached
    when = now if at is None else at.astimezone(UTC)
    historical = at is not None and (now - when) > timedelta(seconds=5)
    month_start, month_end = _month_bounds(when)
    if historical:
        rows = await _fetch(_HISTORY_SQL, when, customer_id)
    else:
        row = await _fetch_now(customer_id, (month_start, month_end), when)
        rows = [row] if row is not None else []
    if not rows:
        raise CustomerNotFound(f"no customer {customer_id!r}")
    state = rows[0]
    status = state["status"]
    paid = state["plan_id"] is not None and _grants_plan(status, state["past_due_since"], when)
    plan = await catalog.plan_by_id(state["plan_id"]) if paid else await standard_plan()
    if paid and state["current_period_start"] and state["current_period_end"]:
        period_start, period_end = state["current_period_start"], state["current_period_end"]
    else:
        period_start, period_end = month_start, month_end
    counts = (
        state
        if not historical
        else (
            await _fetch(
                _COUNTS_SQL, customer_id, period_start, period_end, customer_id, when, when
            )
        )[0]
    )
    used = int(counts["used"])
    credits = max(0, int(counts["credits"]))
    included = plan.included_incidents
    valid_until = None
    in_grace = False
    if paid:
        valid_until = state["current_period_end"]
        if status == "past_due" and state["past_due_since"] is not None:
            grace_end = state["past_due_since"] + grace_period()
            valid_until = min(valid_until, grace_end) if valid_until else grace_end
            in_grace = True
    basis = _basis(plan, paid, status, state, in_grace, valid_until)
    if not paid and historical:
        later = await _first_subscription_after(customer_id, when)
        if later is not None:
            basis += f"; its subscription began only at {_iso(later)}"
    answer = schemas.Entitlement(
        customer_id=customer_id,
        at=when,
        tier=plan.code,
        plan_version=plan.version if paid else None,
        subscription_status=status,
        valid_until=valid_until,
        targets=plan.targets,
        incidents=schemas.IncidentAllowance(
            included=included,
            used=used,
            remaining=None if included is None else max(0, included - used),
        ),
        fast_track=schemas.FastTrackEntitlement(
            credits=credits,
            price=plan.fast_track_price,
            first_response_minutes=plan.fast_track_minutes,
            included=plan.fast_track_included,
        ),
        in_grace_period=in_grace,
        plan_id=plan.id,
        subscription_id=state["subscription_id"] if paid else None,
        period_start=period_start,
        period_end=period_end,
        monthly_price=plan.monthly_price if paid else None,
        overage_price=plan.overage_price if paid else None,
        credit_policy=plan.credit_policy if paid else None,
        basis=basis,
    )
    if cacheable:
        until = entitlement_cache.fresh_until(answer, state["next_expiry"], month_end)
        entitlement_cache.cache.put(customer_id, answer, now, until)
    return answer


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _basis(
    plan: schemas.Plan,
    paid: bool,
    status: str | None,
    state: Any,
    in_grace: bool,
    valid_until: datetime | None,
) -> str:
    """Why this tier applies, in a sentence (an incident keeps it in its snapshot)."""
    subscription = state["subscription_id"]
    if paid:
        why = f"{plan.code} v{plan.version}: subscription {subscription} is {status}"
        if in_grace and valid_until is not None:
            why += f" (payment failed; the plan holds until {_iso(valid_until)})"
        return why
    if subscription is None or status is None:
        return f"{plan.code}: no paid subscription was in force at that instant"
    if status == "past_due":
        days = get_settings().past_due_grace_days
        return f"{plan.code}: subscription {subscription} has been past_due for over {days} days"
    return f"{plan.code}: subscription {subscription} is {status}"


async def _first_subscription_after(customer_id: str, at: datetime) -> datetime | None:
    rows = await _fetch(
        "SELECT min(effective_at) AS first FROM subscription_history"
        " WHERE customer_id = {} AND effective_at > {}",
        customer_id,
        at,
    )
    first: datetime | None = rows[0]["first"] if rows else None
    return first


async def announce(
    customer_id: str, reason: str, *, once: str | None = None, **details: Any
) -> None:
    """Record ``entitlement.updated`` carrying the entitlement as it now stands.

    Call it inside the transaction of the change: the event commits with it or not at all.
    """
    entitlement_cache.cache.forget(customer_id)  # this process knows it changed; others hear
    await outbox.emit(
        "entitlement.updated",
        {
            "customer_id": customer_id,
            "reason": reason,
            **details,
            "entitlement": await entitlement(customer_id),
        },
        customer_id=customer_id,
        once=once,
    )


async def announce_lapsed_grace() -> int:
    """Announce each past-due subscription whose grace period ran out (once per episode).

    Nothing is written when a grace period ends, so without this a helpdesk following the
    webhooks would never hear that the customer fell back to standard.
    """
    grace = grace_period()
    rows = await Subscription.select(
        Subscription.id,
        Subscription.customer_id,
        Subscription.plan_code,
        Subscription.past_due_since,
    ).where((Subscription.status == "past_due") & (Subscription.past_due_since <= utcnow() - grace))
    keys = {r["id"]: f"grace:{r['id']}:{r['past_due_since'].isoformat()}" for r in rows}
    known = await outbox.recorded("entitlement.updated", keys.values())
    announced = 0
    for r in rows:
        if keys[r["id"]] in known:
            continue
        async with engine().transaction():
            await announce(
                r["customer_id"],
                "grace_period_ended",
                once=keys[r["id"]],
                subscription_id=r["id"],
                previous_tier=r["plan_code"],
                grace_ended_at=r["past_due_since"] + grace,
            )
        announced += 1
    return announced


def monthly_fee(plan: schemas.Plan, interval: str) -> Money:
    """The monthly fee a credit percentage applies to (an annual price spread over 12)."""
    if interval == "year":
        return Money(plan.annual_price.amount // 12, plan.currency)
    return plan.monthly_price
