"""Finance reports and exports on real Stripe flows: revenue, the invoice CSV, bad input."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import httpx

from billing import credits, usage
from billing.tables import CreditNote, FastTrackPurchase, Invoice, Refund
from common.clock import utcnow
from tests.billing.conftest import Deliver, Stripe
from tests.billing.test_fast_track_and_entitlements import _buy_saved, _save_card
from tests.billing.test_subscription_modes_and_credits import _subscribe

WIDE = {"from": "2000-01-01T00:00:00Z", "to": "2099-12-31T00:00:00Z"}


def _line(report: dict[str, Any], line: str) -> list[dict[str, Any]]:
    return [r for r in report["rows"] if r["line"] == line]


def _amounts(row: dict[str, Any]) -> dict[str, int]:
    names = ("invoiced", "paid", "refunded", "credited", "service_credits", "net")
    return {n: row[n]["amount"] for n in names}


async def test_paid_then_partly_refunded_then_credited_invoice_nets_in_revenue_and_export(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    finance_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await _subscribe(client, admin_headers, customer["id"], "business")
    await deliver()
    inv = await Invoice.objects().where(Invoice.customer_id == customer["id"]).first()
    assert inv is not None and (inv.status, inv.amount_paid) == ("paid", 49900)
    # Partly refunded (to the card), then credited (to the balance), each a credit note.
    await stripe_emu.post(
        "/v1/credit_notes", invoice=inv.stripe_invoice_id, refund_amount=10000, reason="duplicate"
    )
    await stripe_emu.post("/v1/credit_notes", invoice=inv.stripe_invoice_id, credit_amount=5000)
    # A breached plan incident's service credit: 5 % of 49900, a credit note on the invoice.
    await usage.claim_incident(customer["id"], "inc_rep", utcnow(), fast_track=False)
    credit = await credits.issue_breach_credit("inc_rep")
    assert (credit.kind, credit.amount.amount, credit.status) == ("credit_note", 2495, "issued")
    # Fast-track income: two units on the saved card, one of them refunded.
    bought = await _buy_saved(client, admin_headers, customer["id"], 2)
    assert bought.status_code == 201, bought.text
    purchase = bought.json()
    unit = purchase["unit_amount"]["amount"] if "unit_amount" in purchase else None
    r = await client.post(
        f"/v1/customers/{customer['id']}/fast-track-purchases/{purchase['id']}/refund",
        headers=admin_headers,
        json={"quantity": 1},
    )
    assert r.status_code == 200, r.text
    await deliver()
    row = await FastTrackPurchase.objects().where(FastTrackPurchase.id == purchase["id"]).first()
    assert row is not None and row.paid_at is not None
    unit = row.unit_amount if unit is None else unit
    assert unit > 0

    # Both sides counted: two credit notes and two refunds (one by a credit note) in Stripe
    # and in our mirror, nothing more.
    emu_notes = (await stripe_emu.get("/v1/credit_notes", invoice=inv.stripe_invoice_id))["data"]
    assert sorted(n["total"] for n in emu_notes) == [2495, 5000, 10000]
    assert await CreditNote.count().where(CreditNote.customer_id == customer["id"]) == 3
    emu_refunds = [
        x
        for x in (await stripe_emu.get("/v1/refunds", limit=100))["data"]
        if x["id"] in {n["refunds"][0]["refund"] for n in emu_notes if n["refunds"]}
        or (x.get("metadata") or {}).get("purchase_id") == purchase["id"]
    ]
    assert sorted(x["amount"] for x in emu_refunds) == sorted([10000, unit])
    assert await Refund.count() == 2

    report = await client.get("/v1/reports/revenue", headers=finance_headers, params=WIDE)
    assert report.status_code == 200, report.text
    body = report.json()
    month = inv.created.strftime("%Y-%m")
    subs = _line(body, "subscriptions")
    assert [(r["group"], r["currency"], r["documents"]) for r in subs] == [(month, "usd", 1)]
    assert _amounts(subs[0]) == {
        "invoiced": 49900,
        "paid": 49900,
        "refunded": 10000,
        "credited": 5000 + 2495,
        "service_credits": 2495,
        "net": 49900 - 10000 - 7495,
    }
    ft = _line(body, "fast_track")
    assert sum(r["invoiced"]["amount"] for r in ft) == 2 * unit
    assert sum(r["refunded"]["amount"] for r in ft) == unit
    assert sum(r["net"]["amount"] for r in ft) == unit
    assert [(t["currency"], t["net"]["amount"]) for t in body["totals"]] == [("usd", 32405 + unit)]

    by_plan = (
        await client.get(
            "/v1/reports/revenue", headers=finance_headers, params={**WIDE, "group_by": "plan"}
        )
    ).json()
    assert {(r["group"], r["line"]): r["net"]["amount"] for r in by_plan["rows"]} == {
        ("business", "subscriptions"): 32405,
        ("fast_track", "fast_track"): unit,
    }

    # Worth-it shows the plan's net revenue next to its SLA figures.
    worth = await client.get("/v1/reports/worth-it", headers=finance_headers, params=WIDE)
    tiers = {x["tier"]: x for x in worth.json()["rows"]}
    assert tiers["business"]["revenue"] == [{"amount": 32405, "currency": "usd"}]
    assert tiers["standard"]["revenue"] == []

    # The export: one row per invoice with the same net, parsed by the csv module.
    exported = await client.get(
        "/v1/invoices/export.csv", headers=finance_headers, params={"customer_id": customer["id"]}
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 1
    assert (rows[0]["amount_paid"], rows[0]["refunded"], rows[0]["credited"]) == (
        "49900",
        "10000",
        "7495",
    )
    assert (rows[0]["net"], rows[0]["net_decimal"], rows[0]["total_decimal"]) == (
        "32405",
        "324.05",
        "499.00",
    )
    assert rows[0]["currency"] == "usd"

    # The revenue report as CSV: the same rows, and its sums equal the JSON's totals.
    revenue_csv = await client.get(
        "/v1/reports/revenue/export.csv", headers=finance_headers, params=WIDE
    )
    assert revenue_csv.status_code == 200, revenue_csv.text
    lines = list(csv.DictReader(io.StringIO(revenue_csv.text)))
    assert len(lines) == len(body["rows"])
    assert sum(int(x["net"]) for x in lines) == body["totals"][0]["net"]["amount"]
    assert {x["net_decimal"] for x in lines if x["line"] == "subscriptions"} == {"324.05"}


async def test_invoice_csv_totals_equal_the_json_list(
    client: httpx.AsyncClient, finance_headers: dict[str, str], clean_db: None
) -> None:
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        Invoice(
            id=f"inv_{i:05d}",
            stripe_invoice_id=f"in_{i:05d}",
            customer_id="cust_a" if i % 2 else "cust_b",
            status=("paid", "open", "void")[i % 3],
            currency=("usd", "eur", "jpy")[i % 3],
            total=1000 + i,
            amount_paid=1000 + i if i % 3 == 0 else 0,
            amount_due=0,
            subtotal=1000 + i,
            created=base + timedelta(hours=i),
        )
        for i in range(250)
    ]
    await Invoice.insert(*rows)
    params = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-08T00:00:00+00:00"}
    exported = await client.get("/v1/invoices/export.csv", headers=finance_headers, params=params)
    got = list(csv.DictReader(io.StringIO(exported.text)))
    listed: list[dict[str, Any]] = []
    after = None
    while True:
        page = (
            await client.get(
                "/v1/invoices",
                headers=finance_headers,
                params={**params, "limit": 100, **({"starting_after": after} if after else {})},
            )
        ).json()
        listed += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert len(got) == len(listed) == 6 * 24
    assert [r["id"] for r in got] == [i["id"] for i in listed]
    for currency in ("usd", "eur", "jpy"):
        assert sum(int(r["total"]) for r in got if r["currency"] == currency) == sum(
            i["total"]["amount"] for i in listed if i["currency"] == currency
        )
    yen = next(r for r in got if r["currency"] == "jpy")
    assert yen["total_decimal"] == yen["total"]  # zero-decimal currency
    euro = next(r for r in got if r["currency"] == "eur")
    assert euro["total_decimal"] == f"{int(euro['total']) // 100}.{int(euro['total']) % 100:02d}"
    only_paid = await client.get(
        "/v1/invoices/export.csv", headers=finance_headers, params={**params, "status": "paid"}
    )
    assert {r["status"] for r in csv.DictReader(io.StringIO(only_paid.text))} == {"paid"}


async def test_bad_report_and_export_input_is_problem_json_and_roles_hold(
    client: httpx.AsyncClient,
    finance_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    clean_db: None,
) -> None:
    # Not the operation's schema: 400.
    bad = [
        ("/v1/reports/revenue", {**WIDE, "group_by": "week"}),
        ("/v1/reports/revenue", {"from": "2026-01-01", "to": "2026-02-01T00:00:00Z"}),
        ("/v1/reports/revenue", {"from": "yesterday", "to": "2026-02-01T00:00:00Z"}),
        ("/v1/reports/revenue/export.csv", {**WIDE, "group_by": "plans"}),
        ("/v1/reports/sla", {"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00Z"}),
        ("/v1/reports/sla", {"from": "2026-01-01T00:00:00Z", "to": "2126-02-01T00:00:00Z"}),
        ("/v1/reports/mrr", {"at": "not-a-time"}),
        ("/v1/invoices", {"status": "bogus"}),
        ("/v1/invoices/export.csv", {"status": "bogus"}),
        ("/v1/invoices", {"limit": "0"}),
        ("/v1/invoices", {"limit": "1000"}),
        ("/v1/credit-notes", {"limit": "0"}),
    ]
    # Valid times the pair of which a rule refuses (`from` not before `to`): 422.
    refused = [
        ("/v1/reports/revenue", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
        (
            "/v1/reports/revenue",
            {"from": "2026-01-01T01:00:00+01:00", "to": "2026-01-01T00:00:00Z"},
        ),
        ("/v1/reports/sla", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
        ("/v1/reports/worth-it", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
        ("/v1/reports/mrr", {"at": "2026-01-01T00:00:00Z", "from": "2026-02-01T00:00:00Z"}),
        ("/v1/reports/mrr", {"at": "2099-01-01T00:00:00Z"}),  # the future is not known yet
        ("/v1/invoices", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
        ("/v1/invoices/export.csv", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
    ]
    # Without from/to: the 30 days up to now.
    default = (await client.get("/v1/reports/revenue", headers=finance_headers)).json()
    span = datetime.fromisoformat(default["to"]) - datetime.fromisoformat(default["from"])
    assert span == timedelta(days=30)
    only_to = await client.get(
        "/v1/reports/sla", headers=finance_headers, params={"to": "2026-02-01T00:00:00+01:00"}
    )
    assert (only_to.json()["from"], only_to.json()["to"]) == (
        "2026-01-01T23:00:00Z",
        "2026-01-31T23:00:00Z",
    )
    for path, params in refused:
        r = await client.get(path, headers=finance_headers, params=params)
        assert r.status_code == 422, (path, params, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), path
    for path, params in bad:
        r = await client.get(path, headers=finance_headers, params=params)
        assert r.status_code == 400, (path, params, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), path
        assert r.json()["status"] == 400
    # Finance reads and never writes; helpdesk reads the SLA report, never money.
    assert (await client.post("/v1/customers", headers=finance_headers, json={})).status_code == 403
    assert (await client.post("/v1/plans", headers=finance_headers, json={})).status_code == 403
    for path in (
        "/v1/invoices",
        "/v1/invoices/export.csv",
        "/v1/reports/revenue",
        "/v1/reports/revenue/export.csv",
        "/v1/reports/mrr",
        "/v1/reports/worth-it",
    ):
        r = await client.get(path, headers=helpdesk_headers, params=WIDE)
        assert r.status_code == 403, (path, r.text)
    for path in ("/v1/reports/sla", "/v1/reports/sla/export.csv"):
        assert (await client.get(path, headers=helpdesk_headers, params=WIDE)).status_code == 200


async def _plan(code: str, currency: str, monthly: int, annual: int) -> str:
    from billing.tables import Plan

    plan_id = f"plan_{code}"
    await Plan.insert(
        Plan(
            id=plan_id,
            code=code,
            version=1,
            name=code,
            currency=currency,
            monthly_price=monthly,
            annual_price=annual,
            targets={},
        )
    )
    return plan_id


async def test_mrr_by_plan_and_movement_on_hand_built_history(
    client: httpx.AsyncClient, finance_headers: dict[str, str], clean_db: None
) -> None:
    from datetime import UTC, datetime

    from billing.tables import SubscriptionHistory

    alpha = await _plan("alpha", "usd", 10000, 100000)
    beta = await _plan("beta", "usd", 30000, 300000)
    gamma = await _plan("gamma", "eur", 5000, 50000)

    def at(month: int, day: int, year: int = 2026) -> datetime:
        return datetime(year, month, day, tzinfo=UTC)

    history = [
        # (subscription, from, plan, status, interval)
        ("s1", at(12, 1, 2025), alpha, "active", "month"),  # unchanged
        ("s2", at(2, 1), alpha, "active", "year"),  # new, annual: 100000 / 12
        ("s3", at(3, 1), beta, "trialing", "month"),  # shown apart
        ("s4", at(11, 1, 2025), beta, "active", "month"),
        ("s4", at(3, 10), beta, "past_due", "month"),  # leaves active MRR, shown apart
        ("s5", at(12, 1, 2025), alpha, "active", "month"),
        ("s5", at(2, 20), alpha, "canceled", "month"),  # churn
        ("s6", at(12, 1, 2025), alpha, "active", "month"),
        ("s6", at(2, 10), beta, "active", "month"),  # expansion
        ("s7", at(12, 1, 2025), beta, "active", "month"),
        ("s7", at(2, 10), alpha, "active", "month"),  # contraction
        ("s8", at(1, 1), gamma, "active", "month"),  # another currency, never summed
        ("s9", at(3, 20), alpha, "active", "month"),  # after the instant
    ]
    await SubscriptionHistory.insert(
        *(
            SubscriptionHistory(
                id=f"subh_{n:02d}",
                subscription_id=sub,
                customer_id="cust_x",
                effective_at=when,
                plan_id=plan,
                status=status,
                interval=interval,
            )
            for n, (sub, when, plan, status, interval) in enumerate(history)
        )
    )
    r = await client.get(
        "/v1/reports/mrr",
        headers=finance_headers,
        params={"at": "2026-03-15T00:00:00Z", "from": "2026-01-15T00:00:00Z"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {
        (x["plan"], x["currency"]): (
            x["active"],
            x["mrr"]["amount"],
            x["trialing"],
            x["trialing_mrr"]["amount"],
            x["past_due"],
            x["past_due_mrr"]["amount"],
        )
        for x in body["rows"]
    }
    assert rows == {
        ("alpha", "usd"): (3, 10000 + 8333 + 10000, 0, 0, 0, 0),
        ("beta", "usd"): (1, 30000, 1, 30000, 1, 30000),
        ("gamma", "eur"): (1, 5000, 0, 0, 0, 0),
    }
    assert [(t["currency"], t["mrr"]["amount"]) for t in body["totals"]] == [
        ("eur", 5000),
        ("usd", 58333),
    ]
    moved = {
        m["currency"]: {
            k: m[k]["amount"]
            for k in ("start_mrr", "new", "expansion", "contraction", "churn", "end_mrr")
        }
        for m in body["movement"]
    }
    assert moved == {
        "eur": {
            "start_mrr": 5000,
            "new": 0,
            "expansion": 0,
            "contraction": 0,
            "churn": 0,
            "end_mrr": 5000,
        },
        "usd": {
            "start_mrr": 90000,
            "new": 8333,
            "expansion": 20000,
            "contraction": 20000,
            "churn": 40000,
            "end_mrr": 58333,
        },
    }
    # Without `from`, no movement; the CSV has the same rows.
    plain = (
        await client.get(
            "/v1/reports/mrr", headers=finance_headers, params={"at": "2026-03-15T00:00:00Z"}
        )
    ).json()
    assert plain["movement"] == [] and plain["rows"] == body["rows"]
    exported = await client.get(
        "/v1/reports/mrr/export.csv", headers=finance_headers, params={"at": "2026-03-15T00:00Z"}
    )
    assert exported.status_code == 400  # RFC 3339 wants the seconds
    exported = await client.get(
        "/v1/reports/mrr/export.csv",
        headers=finance_headers,
        params={"at": "2026-03-15T00:00:00Z"},
    )
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(x["plan"], x["currency"], x["mrr"], x["mrr_decimal"]) for x in lines} == {
        ("alpha", "usd", "28333", "283.33"),
        ("beta", "usd", "30000", "300.00"),
        ("gamma", "eur", "5000", "50.00"),
    }


async def test_invoice_export_is_written_in_chunks_from_a_cursor(
    clean_db: None, monkeypatch: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from billing import finance
    from billing import service as billing

    base = datetime(2026, 5, 1, tzinfo=UTC)
    await Invoice.insert(
        *(
            Invoice(
                id=f"inv_{i:05d}",
                stripe_invoice_id=f"in_{i:05d}",
                status="paid",
                currency="usd",
                total=100,
                amount_paid=100,
                created=base + timedelta(minutes=i),
            )
            for i in range(250)
        )
    )
    monkeypatch.setattr(finance, "EXPORT_PREFETCH", 100)
    chunks = [
        c
        async for c in billing.invoices_csv(
            customer_id=None, status=None, created_from=None, created_to=None
        )
    ]
    # The header with the first 100 rows, then one chunk per 100 rows the cursor fetches.
    assert [c.count(b"\n") for c in chunks] == [101, 100, 50]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [r["id"] for r in rows] == [f"inv_{i:05d}" for i in range(249, -1, -1)]
    assert {r["net_decimal"] for r in rows} == {"1.00"}
