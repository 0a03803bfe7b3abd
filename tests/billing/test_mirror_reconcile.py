"""The finance mirror (issue 14): lines with their source, one-off payments, credits linked to
incidents, out-of-order and duplicated events, and the reconcile job that repairs drift."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import stripe
from arq.connections import ArqRedis

from billing import mirror
from billing import service as billing
from billing.tables import CreditNote, Customer, Invoice, Payment, Refund
from common.tables import AuditLog
from tests.billing.conftest import BoughtByCheckout, Deliver, Stripe, Subscribed, sign


@contextlib.asynccontextmanager
async def _sdk(emu: Stripe) -> AsyncIterator[Any]:
    """Stripe's own SDK pointed at the emulator: the objects as Stripe has them."""
    http = stripe.HTTPXClient()
    client = stripe.StripeClient(
        emu.http.headers["Authorization"].removeprefix("Bearer "),
        base_addresses={"api": emu.url},
        http_client=http,
    )
    try:
        yield client.v1
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]


def _ts(value: int | None) -> datetime | None:
    return None if not value else datetime.fromtimestamp(value, UTC)


async def _stripe_customer(customer_id: str) -> str:
    row = await Customer.objects().where(Customer.id == customer_id).first()
    assert row is not None and row.stripe_customer_id
    return row.stripe_customer_id


async def _credit_note(emu: Stripe, invoice: str, amount: int, incident: str) -> dict[str, Any]:
    """A service credit as ``billing.credits`` makes it: a credit note naming the incident."""
    return dict(
        await emu.post(
            "/v1/credit_notes",
            invoice=invoice,
            amount=amount,
            credit_amount=amount,
            reason="order_change",
            memo="SLA breach",
            **{"metadata[incident_id]": incident, "metadata[service_credit_id]": "scr_test"},
        )
    )


async def _assert_mirror_equals_stripe(emu: Stripe, stripe_customer: str) -> dict[str, int]:
    """Every mirrored invoice, credit note, payment and refund of the customer equals the
    object Stripe answers (fetched through the SDK), and there are as many on each side."""
    async with _sdk(emu) as sdk:
        return await _compare(sdk, stripe_customer)


async def _compare(sdk: Any, stripe_customer: str) -> dict[str, int]:
    invoices = (await sdk.invoices.list_async({"customer": stripe_customer, "limit": 100})).data
    rows = {
        r.stripe_invoice_id: r
        for r in await Invoice.objects().output(load_json=True)
        if (r.stripe_object or {}).get("customer") == stripe_customer
    }
    assert sorted(rows) == sorted(i.id for i in invoices)
    for inv in invoices:
        row = rows[inv.id]
        assert (row.status, row.currency, row.number) == (inv.status, inv.currency, inv.number)
        assert (row.subtotal, row.total, row.amount_paid, row.amount_due) == (
            inv.subtotal,
            inv.total,
            inv.amount_paid,
            inv.amount_due,
        )
        assert row.paid_at == _ts(inv.status_transitions.paid_at)
        assert [(line["id"], line["amount"]) for line in row.lines] == [
            (line.id, line.amount) for line in inv.lines.data
        ]
    notes = (await sdk.credit_notes.list_async({"customer": stripe_customer, "limit": 100})).data
    note_rows = {
        r.stripe_credit_note_id: r
        for r in await CreditNote.objects()
        if r.stripe_invoice_id in {i.id for i in invoices}
    }
    assert sorted(note_rows) == sorted(n.id for n in notes)
    for note in notes:
        nrow = note_rows[note.id]
        assert (nrow.amount, nrow.status, nrow.currency) == (note.total, note.status, note.currency)
        assert nrow.incident_id == note.metadata.to_dict().get("incident_id")
    intents = [
        pi
        for pi in (
            await sdk.payment_intents.list_async(
                {"customer": stripe_customer, "limit": 100, "expand": ["data.latest_charge"]}
            )
        ).data
        if pi.metadata.to_dict().get("purchase_id")
    ]
    pay_rows = {
        r.stripe_payment_intent_id: r
        for r in await Payment.objects().output(load_json=True)
        if (r.stripe_object or {}).get("customer") == stripe_customer
    }
    assert sorted(pay_rows) == sorted(pi.id for pi in intents)
    for pi in intents:
        prow = pay_rows[pi.id]
        charge = pi.latest_charge
        assert (prow.amount, prow.amount_received, prow.currency, prow.status) == (
            pi.amount,
            pi.amount_received,
            pi.currency,
            pi.status,
        )
        assert prow.fast_track_purchase_id == pi.metadata["purchase_id"]
        assert prow.amount_refunded == charge.amount_refunded
        assert prow.paid_at == _ts(charge.created)
        assert prow.stripe_charge_id == charge.id
    refunds = [
        r
        for pi in intents
        for r in (await sdk.refunds.list_async({"payment_intent": pi.id, "limit": 100})).data
    ]
    refund_rows = {
        r.stripe_refund_id: r
        for r in await Refund.objects()
        if r.stripe_payment_intent_id in {pi.id for pi in intents}
    }
    assert sorted(refund_rows) == sorted(r.id for r in refunds)
    for rf in refunds:
        rrow = refund_rows[rf.id]
        assert (rrow.amount, rrow.status, rrow.currency) == (rf.amount, rf.status, rf.currency)
        assert rrow.incident_id == rf.metadata.to_dict().get("incident_id")
        assert rrow.fast_track_purchase_id == rf.metadata.to_dict().get("purchase_id")
    return {
        "invoices": len(invoices),
        "credit_notes": len(notes),
        "payments": len(intents),
        "refunds": len(refunds),
    }


async def _post_event(client: httpx.AsyncClient, emu: Stripe, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    r = await client.post(
        "/v1/stripe/webhook",
        content=body,
        headers={"Stripe-Signature": sign(body, emu.secret), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


async def _newcomer_pays_everything(
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    bought_by_checkout: BoughtByCheckout,
    *,
    deliver: bool,
) -> dict[str, Any]:
    """A newcomer buys one fast-track incident ($149 on the standard tier) in Checkout, then
    the basic plan; a breach is credited on the plan's invoice and another refunds part of
    the fast-track payment. Returns the Stripe ids."""
    purchase = await bought_by_checkout(customer["id"], 1, deliver=deliver)
    sub = await subscribed(customer["id"], "basic", deliver=deliver)
    invoice = sub["latest_invoice"]
    note = await _credit_note(stripe_emu, invoice, 495, "inc_breached_plan")
    intents = await stripe_emu.get("/v1/payment_intents", customer=sub["customer"])
    (intent,) = [pi for pi in intents["data"] if pi["metadata"].get("purchase_id")]
    assert intent["amount"] == 14900 and intent["metadata"]["purchase_id"] == purchase["id"]
    refund = await stripe_emu.post(
        "/v1/refunds",
        payment_intent=intent["id"],
        amount=4900,
        **{
            "metadata[purchase_id]": purchase["id"],
            "metadata[incident_id]": "inc_breached_fast",
            "metadata[service_credit_id]": "scr_fast",
        },
    )
    return {
        "purchase": purchase["id"],
        "invoice": invoice,
        "credit_note": note["id"],
        "payment_intent": intent["id"],
        "refund": refund["id"],
        "stripe_customer": sub["customer"],
    }


async def test_events_shuffled_and_twice_leave_the_mirror_equal_to_stripe(
    client: httpx.AsyncClient,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    bought_by_checkout: BoughtByCheckout,
    run_worker: Any,
) -> None:
    ids = await _newcomer_pays_everything(
        customer, stripe_emu, subscribed, bought_by_checkout, deliver=False
    )
    events = await stripe_emu.new_events()
    types = {e["type"] for e in events}
    assert {"payment_intent.succeeded", "charge.refunded", "refund.created"} <= types
    assert {"invoice.paid", "credit_note.created"} <= types
    rng = random.Random(14)
    # Shuffled, each twice through the signed endpoint (duplicates are no-ops), then every
    # stored event applied once more in another shuffled order.
    for _ in range(2):
        batch = list(events)
        rng.shuffle(batch)
        for event in batch:
            await _post_event(client, stripe_emu, event)
    await run_worker()
    stripe_emu.mark_seen(events)
    replayed = await billing.mark_stripe_events_for_replay([e["id"] for e in events], False)
    assert len(replayed) == len(events)
    rng.shuffle(replayed)
    for event_id in replayed:
        await billing.process_stripe_event(event_id)

    counts = await _assert_mirror_equals_stripe(stripe_emu, ids["stripe_customer"])
    assert counts == {"invoices": 1, "credit_notes": 1, "payments": 1, "refunds": 1}

    # Each line and credit knows what produced it.
    inv = (
        await Invoice.objects()
        .where(Invoice.stripe_invoice_id == ids["invoice"])
        .first()
        .output(load_json=True)
    )
    assert inv is not None
    assert [(line["source"], line["plan_code"]) for line in inv.lines] == [
        ("subscription", "basic")
    ]
    note = await CreditNote.objects().where(CreditNote.stripe_credit_note_id == ids["credit_note"])
    assert [(n.incident_id, n.service_credit_id) for n in note] == [
        ("inc_breached_plan", "scr_test")
    ]
    refund = await Refund.objects().where(Refund.stripe_refund_id == ids["refund"]).first()
    assert refund is not None
    assert (refund.incident_id, refund.fast_track_purchase_id, refund.customer_id) == (
        "inc_breached_fast",
        ids["purchase"],
        customer["id"],
    )
    payment = await Payment.objects().first()
    assert payment is not None and payment.customer_id == customer["id"]
    assert (payment.amount, payment.amount_refunded, payment.status) == (14900, 4900, "succeeded")


async def test_finance_sees_the_fast_track_payment(
    client: httpx.AsyncClient,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    bought_by_checkout: BoughtByCheckout,
    deliver: Deliver,
    finance_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
) -> None:
    ids = await _newcomer_pays_everything(
        customer, stripe_emu, subscribed, bought_by_checkout, deliver=True
    )
    await deliver()
    r = await client.get(
        "/v1/payments", params={"customer_id": customer["id"]}, headers=finance_headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["has_more"] is False
    (pay,) = body["data"]
    assert pay["id"].startswith("pay_")
    assert pay["stripe_payment_intent_id"] == ids["payment_intent"]
    assert pay["fast_track_purchase_id"] == ids["purchase"]
    assert pay["amount"] == {"amount": 14900, "currency": "usd"}
    assert pay["amount_refunded"] == {"amount": 4900, "currency": "usd"}
    assert pay["status"] == "succeeded" and pay["paid_at"].endswith("Z")
    assert [
        (rf["stripe_refund_id"], rf["amount"]["amount"], rf["incident_id"]) for rf in pay["refunds"]
    ] == [(ids["refund"], 4900, "inc_breached_fast")]
    one = await client.get(f"/v1/payments/{pay['id']}", headers=finance_headers)
    assert one.status_code == 200 and one.json() == pay
    by_stripe = await client.get(f"/v1/payments/{ids['payment_intent']}", headers=finance_headers)
    assert by_stripe.json()["id"] == pay["id"]
    assert (await client.get("/v1/payments/pay_nope", headers=finance_headers)).status_code == 404
    assert (await client.get("/v1/payments", headers=helpdesk_headers)).status_code == 403
    assert (await client.get("/v1/payments")).status_code == 401
    filtered = await client.get(
        "/v1/payments", params={"status": "canceled"}, headers=finance_headers
    )
    assert filtered.json()["data"] == []
    # Paging like the invoice list.
    page = await client.get(
        "/v1/payments", params={"limit": 1, "starting_after": pay["id"]}, headers=finance_headers
    )
    assert page.json() == {"data": [], "has_more": False}
    # The invoice list still holds invoices only; its lines say what produced them.
    invoices = (await client.get("/v1/invoices", headers=finance_headers)).json()["data"]
    assert [i["stripe_invoice_id"] for i in invoices] == [ids["invoice"]]
    assert [(ln["source"], ln["plan_code"]) for ln in invoices[0]["lines"]] == [
        ("subscription", "basic")
    ]
    notes = (await client.get("/v1/credit-notes", headers=finance_headers)).json()["data"]
    assert [(n["amount"]["amount"], n["incident_id"]) for n in notes] == [
        (495, "inc_breached_plan")
    ]


async def test_reconcile_restores_a_deleted_row_and_repairs_edited_ones_once(
    client: httpx.AsyncClient,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    bought_by_checkout: BoughtByCheckout,
    deliver: Deliver,
    admin_headers: dict[str, str],
) -> None:
    # Whatever earlier tests left in the (session-wide) emulator is mirrored first.
    await billing.reconcile_with_stripe()
    ids = await _newcomer_pays_everything(
        customer, stripe_emu, subscribed, bought_by_checkout, deliver=True
    )
    other = await client.post(
        "/v1/customers",
        headers=admin_headers,
        json={"external_id": "org-other", "name": "Other", "email": "o@x.test", "timezone": "UTC"},
    )
    second = (await subscribed(other.json()["id"], "basic"))["latest_invoice"]
    await deliver()
    assert (await billing.reconcile_with_stripe()).total_fixed == 0  # events did it all

    await Invoice.delete().where(Invoice.stripe_invoice_id == ids["invoice"])
    await Invoice.update({Invoice.amount_paid: 1}).where(Invoice.stripe_invoice_id == second)
    await CreditNote.update({CreditNote.amount: 1}).where(
        CreditNote.stripe_credit_note_id == ids["credit_note"]
    )
    audited = await AuditLog.count()
    report = await billing.reconcile_with_stripe()
    assert (report.invoices.restored_ids, report.invoices.repaired_ids) == (
        [ids["invoice"]],
        [second],
    )
    assert (report.credit_notes.restored, report.credit_notes.repaired_ids) == (
        0,
        [ids["credit_note"]],
    )
    for counts in (report.payments, report.refunds):
        assert (counts.restored, counts.repaired) == (0, 0) and counts.checked >= 1
    assert report.invoices.checked >= 2 and report.total_fixed == 3
    await _assert_mirror_equals_stripe(stripe_emu, ids["stripe_customer"])
    repaired = await Invoice.objects().where(Invoice.stripe_invoice_id == second).first()
    assert repaired is not None and repaired.amount_paid == 9900
    actions = [
        (r["action"], r["entity_type"])
        for r in await AuditLog.select(AuditLog.action, AuditLog.entity_type)
        .order_by(AuditLog.id)
        .offset(audited)
    ]
    assert sorted(actions) == [
        ("credit_note.reconciled", "credit_note"),
        ("invoice.reconciled", "invoice"),
        ("invoice.reconciled", "invoice"),
    ]
    # A second run finds nothing to do.
    again = await billing.reconcile_with_stripe()
    assert again.total_fixed == 0 and again.invoices.checked == report.invoices.checked


async def test_reconcile_catches_events_never_delivered_even_run_twice_at_once(
    client: httpx.AsyncClient,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    bought_by_checkout: BoughtByCheckout,
) -> None:
    await billing.reconcile_with_stripe()
    # Every webhook of these payments is dropped.
    ids = await _newcomer_pays_everything(
        customer, stripe_emu, subscribed, bought_by_checkout, deliver=False
    )
    ours = Payment.stripe_payment_intent_id == ids["payment_intent"]
    assert await Payment.count().where(ours) == 0
    assert await Refund.count().where(Refund.stripe_refund_id == ids["refund"]) == 0
    first, second = await asyncio.gather(
        billing.reconcile_with_stripe(), billing.reconcile_with_stripe()
    )
    # Two runs at once: each object restored by exactly one of them, one row each.
    for name, stripe_id in (
        ("invoices", ids["invoice"]),
        ("credit_notes", ids["credit_note"]),
        ("payments", ids["payment_intent"]),
        ("refunds", ids["refund"]),
    ):
        restored = getattr(first, name).restored_ids + getattr(second, name).restored_ids
        assert restored == [stripe_id], name
        assert getattr(first, name).repaired + getattr(second, name).repaired == 0, name
    assert await Payment.count().where(ours) == 1
    assert await Refund.count().where(Refund.stripe_refund_id == ids["refund"]) == 1
    await _assert_mirror_equals_stripe(stripe_emu, ids["stripe_customer"])
    assert (await billing.reconcile_with_stripe()).total_fixed == 0
    # Now the events come late, in any order: nothing changes.
    events = await stripe_emu.new_events()
    random.Random(3).shuffle(events)
    for event in events:
        await _post_event(client, stripe_emu, event)
    for event in events:
        await billing.process_stripe_event(event["id"])
    stripe_emu.mark_seen(events)
    await _assert_mirror_equals_stripe(stripe_emu, ids["stripe_customer"])
    assert (await billing.reconcile_with_stripe()).total_fixed == 0


async def test_reconcile_since_only_looks_at_recent_objects(
    customer: dict[str, Any], stripe_emu: Stripe, bought_by_checkout: BoughtByCheckout
) -> None:
    clock = await stripe_emu.get("/_emulator/clock")
    before = datetime.fromtimestamp(int(clock["now"]), UTC)
    await bought_by_checkout(customer["id"], 1, deliver=False)
    (intent,) = (await stripe_emu.get("/v1/payment_intents", limit=1))["data"]
    later = await billing.reconcile_with_stripe(before.replace(year=before.year + 1))
    assert later.payments.checked == 0 and await Payment.count() == 0
    recent = await billing.reconcile_with_stripe(before)
    assert intent["id"] in recent.payments.restored_ids
    # Only what Stripe created from then on was looked at (earlier tests made more).
    everything = await billing.reconcile_with_stripe()
    assert everything.payments.checked > recent.payments.checked


async def test_cli_reconcile_prints_what_it_repaired(
    customer: dict[str, Any], stripe_emu: Stripe, bought_by_checkout: BoughtByCheckout
) -> None:
    await billing.reconcile_with_stripe()
    await bought_by_checkout(customer["id"], 1, deliver=False)
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "stripe", "reconcile", "--since", "3650"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (row,) = await Payment.objects().where(Payment.customer_id == customer["id"])
    assert "payments: checked" in done.stdout and "restored 1" in done.stdout
    assert f"restored {row.stripe_payment_intent_id}" in done.stdout
    assert "fixed 1 object(s)" in done.stdout


def _line(parent: dict[str, Any], metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": "il_1",
        "amount": 100,
        "metadata": metadata or {},
        "parent": parent,
        "pricing": {"type": "price_details", "price_details": {"price": "price_1"}},
    }


def _sub_item(proration: bool) -> dict[str, Any]:
    return {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {"proration": proration, "invoice_item": None},
    }


def _inv_item(proration: bool) -> dict[str, Any]:
    return {
        "type": "invoice_item_details",
        "subscription_item_details": None,
        "invoice_item_details": {"proration": proration, "invoice_item": "ii_1"},
    }


def test_each_line_says_what_produced_it() -> None:
    cases = [
        (_line(_sub_item(False)), "subscription", None, None),
        (_line(_sub_item(True)), "proration", None, None),
        (_line(_inv_item(True)), "proration", None, None),
        (_line(_inv_item(False), {"incident_id": "inc_1"}), "overage", "inc_1", None),
        (_line(_inv_item(False), {"purchase_id": "ftp_1"}), "fast_track", None, "ftp_1"),
        (_line(_inv_item(False)), "other", None, None),
        ({"id": "il_2", "amount": 5}, "other", None, None),
    ]
    for line, source, incident, purchase in cases:
        found = mirror.line_source(line)
        assert (found["source"], found["incident_id"], found["fast_track_purchase_id"]) == (
            source,
            incident,
            purchase,
        ), line
    assert mirror.line_source(_line(_inv_item(False)))["stripe_invoice_item_id"] == "ii_1"
    view = mirror.line_view({"description": "old", "amount": 7})  # mirrored before sources
    assert (view.source, view.amount, view.plan_code) == ("other", 7, None)


async def test_the_hourly_worker_job_reconciles(
    customer: dict[str, Any],
    stripe_emu: Stripe,
    bought_by_checkout: BoughtByCheckout,
    redis: ArqRedis,
    run_worker: Callable[[], Awaitable[int]],
) -> None:
    from workers import billing_jobs, queue

    assert [c.name for c in billing_jobs.CRON_JOBS if c.name == "cron:reconcile_mirror"]
    await billing.reconcile_with_stripe()
    await bought_by_checkout(customer["id"], 1, deliver=False)
    for token in ("a", "b"):  # twice: the second finds nothing to do
        job = await queue._enqueue(
            redis, "reconcile_mirror", queue._job_id("reconcile_mirror", token)
        )
        assert job is not None
        await run_worker()
        assert await job.result(timeout=5) == (1 if token == "a" else 0)
    assert await Payment.count().where(Payment.customer_id == customer["id"]) == 1


async def test_a_page_older_than_an_applied_event_is_not_written_over_it(
    customer: dict[str, Any], stripe_emu: Stripe, subscribed: Subscribed
) -> None:
    from billing import reconcile

    sub = await subscribed(customer["id"], "basic")  # its events applied: the invoice is paid
    listed = dict(await stripe_emu.get(f"/v1/invoices/{sub['latest_invoice']}"))
    # As a page listed before the payment would have it.
    listed.update(status="open", amount_paid=0, amount_remaining=listed["amount_due"])
    listed["status_transitions"] = {**listed["status_transitions"], "paid_at": None}
    outcome = await reconcile._reconcile_one("invoice", reconcile._invoice, listed)
    assert outcome == "unchanged"  # fetched again before writing: Stripe says paid
    row = await Invoice.objects().where(Invoice.stripe_invoice_id == listed["id"]).first()
    assert row is not None and (row.status, row.amount_paid) == ("paid", 9900)


async def test_an_invoice_with_more_lines_than_stripe_embeds_is_mirrored_whole(
    customer: dict[str, Any], stripe_emu: Stripe
) -> None:
    """Stripe embeds an invoice's first lines only (``has_more``); the rest are fetched.
    The lines are the overage billing's invoice items (``billing.usage``) and one other."""
    stripe_customer = await _stripe_customer(customer["id"])
    inv = await stripe_emu.post(
        "/v1/invoices", customer=stripe_customer, collection_method="send_invoice", days_until_due=7
    )
    for n, meta in enumerate(({"incident_id": "inc_a"}, {"incident_id": "inc_b"}, {})):
        await stripe_emu.post(
            "/v1/invoiceitems",
            customer=stripe_customer,
            amount=2500 + n,
            currency="usd",
            invoice=inv["id"],
            description=f"item {n}",
            **{f"metadata[{k}]": v for k, v in meta.items()},
        )
    full = dict(await stripe_emu.get(f"/v1/invoices/{inv['id']}"))
    truncated = {**full, "lines": {**full["lines"], "data": full["lines"]["data"][:1]}}
    truncated["lines"]["has_more"] = True
    await mirror.in_transaction(
        inv["id"], lambda: mirror.upsert_invoice(truncated, event_key="000000000001:0:evt_x")
    )
    row = (
        await Invoice.objects()
        .where(Invoice.stripe_invoice_id == inv["id"])
        .first()
        .output(load_json=True)
    )
    assert row is not None and row.total == 2500 + 2501 + 2502
    assert sorted((ln["amount"], ln["source"], ln["incident_id"]) for ln in row.lines) == [
        (2500, "overage", "inc_a"),
        (2501, "overage", "inc_b"),
        (2502, "other", None),
    ]
    assert sorted(ln["id"] for ln in row.lines) == sorted(ln["id"] for ln in full["lines"]["data"])
