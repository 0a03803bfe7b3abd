"""Finance reports over the Stripe mirror: revenue (by month or plan) and MRR at an instant.

Aggregated in SQL, per currency (never summed across currencies).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from billing import finance, schemas
from common.db import connection
from common.money import Money, to_decimal

# Ids of the refunds that credit notes made: counted with their credit note, not again.
_CREDIT_NOTE_REFUNDS = """
    SELECT x ->> 'refund' AS id, (x ->> 'amount_refunded')::bigint AS amount, c.id AS note
      FROM credit_note c,
           jsonb_array_elements(
               CASE WHEN jsonb_typeof(c.stripe_object -> 'refunds') = 'array'
                    THEN c.stripe_object -> 'refunds' ELSE '[]'::jsonb END) AS x
"""

# Every movement of money in [$1, $2) as a fact row (group, line, currency, amounts), then
# summed per group, line and currency. $3 is 'month' (UTC months) or 'plan'.
_REVENUE_SQL = """
WITH cn_refund AS (:cn_refunds),
facts AS (
    SELECT CASE WHEN $3 = 'month' THEN to_char(i.created AT TIME ZONE 'UTC', 'YYYY-MM')
                ELSE COALESCE(s.plan_code, 'none') END AS grp,
           'subscriptions' AS line, i.currency, 1 AS documents, i.total AS invoiced,
           i.amount_paid AS paid, 0::bigint AS refunded, 0::bigint AS credited,
           0::bigint AS service_credits
      FROM invoice i LEFT JOIN subscription s ON s.id = i.subscription_id
     WHERE i.created >= $1 AND i.created < $2 AND i.status IN ('open', 'paid', 'uncollectible')
    UNION ALL
    -- post-payment credit notes: the part refunded to the card, and the part credited
    SELECT CASE WHEN $3 = 'month' THEN to_char(c.created AT TIME ZONE 'UTC', 'YYYY-MM')
                ELSE COALESCE(s.plan_code, 'none') END,
           'subscriptions', c.currency, 0, 0, 0, r.refunded, c.amount - r.refunded, 0
      FROM credit_note c
      CROSS JOIN LATERAL (
            SELECT COALESCE(sum(x.amount), 0)::bigint AS refunded
              FROM cn_refund x WHERE x.note = c.id) r
      LEFT JOIN invoice i ON i.stripe_invoice_id = c.stripe_invoice_id
      LEFT JOIN subscription s ON s.id = i.subscription_id
     WHERE c.created >= $1 AND c.created < $2 AND c.status <> 'void'
       AND COALESCE(c.stripe_object ->> 'type', 'post_payment') <> 'pre_payment'
    UNION ALL
    -- refunds no credit note made: of a fast-track payment, or of something else
    SELECT CASE WHEN $3 = 'month' THEN to_char(f.created AT TIME ZONE 'UTC', 'YYYY-MM')
                WHEN p.id IS NULL THEN 'none' ELSE 'fast_track' END,
           CASE WHEN p.id IS NULL THEN 'subscriptions' ELSE 'fast_track' END,
           f.currency, 0, 0, 0, f.amount, 0, 0
      FROM refund f
      LEFT JOIN fast_track_purchase p ON p.stripe_payment_intent_id = f.stripe_payment_intent_id
      LEFT JOIN cn_refund x ON x.id = f.stripe_refund_id
     WHERE f.created >= $1 AND f.created < $2 AND f.status NOT IN ('failed', 'canceled')
       AND x.id IS NULL
    UNION ALL
    -- fast-track purchases (one-off payments), by the time they were paid
    SELECT CASE WHEN $3 = 'month' THEN to_char(p.paid_at AT TIME ZONE 'UTC', 'YYYY-MM')
                ELSE 'fast_track' END,
           'fast_track', p.currency, 1, p.unit_amount * p.quantity, p.unit_amount * p.quantity,
           0, 0, 0
      FROM fast_track_purchase p
     WHERE p.status IN ('paid', 'refunded') AND p.paid_at >= $1 AND p.paid_at < $2
    UNION ALL
    -- service credits: already in refunded/credited above, shown as their own figure
    SELECT CASE WHEN $3 = 'month' THEN to_char(sc.issued_at AT TIME ZONE 'UTC', 'YYYY-MM')
                WHEN sc.kind = 'refund' THEN 'fast_track'
                ELSE COALESCE(s.plan_code, 'none') END,
           CASE WHEN sc.kind = 'refund' THEN 'fast_track' ELSE 'subscriptions' END,
           sc.currency, 0, 0, 0, 0, 0, sc.amount
      FROM service_credit sc
      LEFT JOIN invoice i ON i.stripe_invoice_id = sc.stripe_invoice_id
      LEFT JOIN subscription s ON s.id = i.subscription_id
     WHERE sc.status = 'issued' AND sc.kind IN ('refund', 'credit_note')
       AND sc.issued_at >= $1 AND sc.issued_at < $2
)
SELECT grp, line, currency, sum(documents)::bigint AS documents,
       sum(invoiced)::bigint AS invoiced, sum(paid)::bigint AS paid,
       sum(refunded)::bigint AS refunded, sum(credited)::bigint AS credited,
       sum(service_credits)::bigint AS service_credits
  FROM facts
 GROUP BY grp, line, currency
 ORDER BY grp, line, currency
""".replace(":cn_refunds", _CREDIT_NOTE_REFUNDS)  # constants only: values are $n

_AMOUNTS = ("invoiced", "paid", "refunded", "credited", "service_credits")


async def _fetch(sql: str, *args: Any) -> list[Any]:
    async with connection() as conn:
        rows: list[Any] = await conn.fetch(sql, *args)
        return rows


async def revenue_report(
    *, start: datetime, end: datetime, group_by: schemas.RevenueGroup
) -> schemas.RevenueReport:
    """Invoiced, paid, refunded, credited and net in ``[start, end)``, grouped by UTC month
    or by plan, per line (subscriptions, fast-track) and currency."""
    rows = await _fetch(_REVENUE_SQL, start, end, group_by)
    out: list[schemas.RevenueRow] = []
    sums: dict[str, dict[str, int]] = {}
    for r in rows:
        c = r["currency"]
        v = {name: int(r[name]) for name in _AMOUNTS}
        v["net"] = v["paid"] - v["refunded"] - v["credited"]
        total = sums.setdefault(c, dict.fromkeys((*_AMOUNTS, "net"), 0))
        for name, amount in v.items():
            total[name] += amount
        out.append(
            schemas.RevenueRow(
                group=r["grp"],
                line=r["line"],
                currency=c,
                documents=int(r["documents"]),
                **{name: Money(amount, c) for name, amount in v.items()},
            )
        )
    totals = [
        schemas.RevenueTotal(currency=c, **{n: Money(a, c) for n, a in v.items()})
        for c, v in sorted(sums.items())
    ]
    return schemas.RevenueReport(start=start, end=end, group_by=group_by, rows=out, totals=totals)


# Each subscription's plan, status and interval at $1, from the append-only history, and
# its monthly value (annual prices / 12, rounded half up per subscription).
_AT_SQL = """
    SELECT DISTINCT ON (h.subscription_id)
           h.subscription_id AS sid, p.code AS plan, p.currency, h.status,
           CASE WHEN h.interval = 'year' THEN (p.annual_price + 6) / 12
                ELSE p.monthly_price END AS mrr
      FROM subscription_history h JOIN plan p ON p.id = h.plan_id
     WHERE h.effective_at <= $1
     ORDER BY h.subscription_id, h.effective_at DESC, h.id DESC
"""

_MRR_SQL = """
SELECT plan, currency,
       count(*) FILTER (WHERE status = 'active') AS active,
       COALESCE(sum(mrr) FILTER (WHERE status = 'active'), 0)::bigint AS mrr,
       count(*) FILTER (WHERE status = 'trialing') AS trialing,
       COALESCE(sum(mrr) FILTER (WHERE status = 'trialing'), 0)::bigint AS trialing_mrr,
       count(*) FILTER (WHERE status = 'past_due') AS past_due,
       COALESCE(sum(mrr) FILTER (WHERE status = 'past_due'), 0)::bigint AS past_due_mrr
  FROM (:at) s
 WHERE status IN ('active', 'trialing', 'past_due')
 GROUP BY plan, currency
 ORDER BY plan, currency
""".replace(":at", _AT_SQL)  # constants only: values are $n

# The active MRR of each subscription at $2 (start) and $1 (end), side by side.
_MOVEMENT_SQL = """
WITH a AS (SELECT sid, currency, mrr FROM (:start_at) s WHERE status = 'active'),
     b AS (SELECT sid, currency, mrr FROM (:at) s WHERE status = 'active'),
     m AS (SELECT COALESCE(a.currency, b.currency) AS currency,
                  COALESCE(a.mrr, 0) AS before, COALESCE(b.mrr, 0) AS after
             FROM a FULL JOIN b ON a.sid = b.sid AND a.currency = b.currency)
SELECT currency,
       sum(before)::bigint AS start_mrr,
       COALESCE(sum(after) FILTER (WHERE before = 0), 0)::bigint AS new,
       COALESCE(sum(after - before) FILTER (WHERE before > 0 AND after > before), 0)::bigint
           AS expansion,
       COALESCE(sum(before - after) FILTER (WHERE after > 0 AND after < before), 0)::bigint
           AS contraction,
       COALESCE(sum(before) FILTER (WHERE after = 0), 0)::bigint AS churn,
       sum(after)::bigint AS end_mrr
  FROM m
 GROUP BY currency
 ORDER BY currency
""".replace(":start_at", _AT_SQL.replace("$1", "$2")).replace(":at", _AT_SQL)  # constants


async def mrr_report(*, at: datetime, start: datetime | None = None) -> schemas.MrrReport:
    """MRR by plan at ``at``; with ``start``, its movement from ``start`` to ``at``."""
    rows = await _fetch(_MRR_SQL, at)
    out = [
        schemas.MrrRow(
            plan=r["plan"],
            currency=r["currency"],
            active=int(r["active"]),
            mrr=Money(int(r["mrr"]), r["currency"]),
            trialing=int(r["trialing"]),
            trialing_mrr=Money(int(r["trialing_mrr"]), r["currency"]),
            past_due=int(r["past_due"]),
            past_due_mrr=Money(int(r["past_due_mrr"]), r["currency"]),
        )
        for r in rows
    ]
    totals: dict[str, list[int]] = {}
    for row in out:
        t = totals.setdefault(row.currency, [0] * 6)
        for i, n in enumerate(
            (
                row.active,
                row.mrr.amount,
                row.trialing,
                row.trialing_mrr.amount,
                row.past_due,
                row.past_due_mrr.amount,
            )
        ):
            t[i] += n
    movement: list[schemas.MrrMovement] = []
    if start is not None:
        movement = [
            schemas.MrrMovement(
                currency=r["currency"],
                **{
                    k: Money(int(r[k]), r["currency"])
                    for k in ("start_mrr", "new", "expansion", "contraction", "churn", "end_mrr")
                },
            )
            for r in await _fetch(_MOVEMENT_SQL, at, start)
        ]
    return schemas.MrrReport(
        at=at,
        start=start,
        rows=out,
        totals=[
            schemas.MrrRow(
                plan="*",
                currency=c,
                active=t[0],
                mrr=Money(t[1], c),
                trialing=t[2],
                trialing_mrr=Money(t[3], c),
                past_due=t[4],
                past_due_mrr=Money(t[5], c),
            )
            for c, t in sorted(totals.items())
        ],
        movement=movement,
    )


async def incident_credits(incident_ids: Sequence[str]) -> list[schemas.IncidentCredit]:
    """The issued service credits (refunds and credit notes) of these incidents."""
    if not incident_ids:
        return []
    rows = await _fetch(
        "SELECT incident_id, kind, amount, currency FROM service_credit"
        " WHERE incident_id = ANY($1::text[]) AND status = 'issued'"
        " AND kind IN ('refund', 'credit_note')",
        list(incident_ids),
    )
    return [
        schemas.IncidentCredit(r["incident_id"], r["kind"], Money(int(r["amount"]), r["currency"]))
        for r in rows
    ]


REVENUE_CSV_HEADER = (
    "group",
    "line",
    "currency",
    "documents",
    *(
        f"{name}{suffix}"
        for name in ("invoiced", "paid", "refunded", "credited", "service_credits", "net")
        for suffix in ("", "_decimal")
    ),
)


def _money_cells(*amounts: Money) -> list[Any]:
    return [v for m in amounts for v in (m.amount, to_decimal(m.amount, m.currency))]


def revenue_csv(report: schemas.RevenueReport) -> Iterator[bytes]:
    """The report's rows as CSV (totals are the sums of the rows per currency)."""
    return finance.rows_csv(
        REVENUE_CSV_HEADER,
        (
            [
                r.group,
                r.line,
                r.currency,
                r.documents,
                *_money_cells(r.invoiced, r.paid, r.refunded, r.credited, r.service_credits, r.net),
            ]
            for r in report.rows
        ),
    )


MRR_CSV_HEADER = (
    "plan",
    "currency",
    "active",
    "mrr",
    "mrr_decimal",
    "trialing",
    "trialing_mrr",
    "trialing_mrr_decimal",
    "past_due",
    "past_due_mrr",
    "past_due_mrr_decimal",
)


def mrr_csv(report: schemas.MrrReport) -> Iterator[bytes]:
    """MRR by plan as CSV, one row per plan and currency."""
    return finance.rows_csv(
        MRR_CSV_HEADER,
        (
            [
                r.plan,
                r.currency,
                r.active,
                *_money_cells(r.mrr),
                r.trialing,
                *_money_cells(r.trialing_mrr),
                r.past_due,
                *_money_cells(r.past_due_mrr),
            ]
            for r in report.rows
        ),
    )
