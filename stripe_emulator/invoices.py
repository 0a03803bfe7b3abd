"""Invoices, their lines, pending invoice items, customer-balance application and collection."""

from __future__ import annotations

from stripe_emulator.clock import DAY
from stripe_emulator.customers import adjust_balance, default_payment_method, ensure_currency
from stripe_emulator.errors import StripeError, card_error, invalid
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id
from stripe_emulator.objects import Obj, build, deleted, list_object, public
from stripe_emulator.payments import (
    PAYMENT_HOOKS,
    confirm,
    create_intent,
    customer_payment_method,
)
from stripe_emulator.routing import route
from stripe_emulator.state import (
    State,
    created_filter,
    list_filter,
    newest_first,
    paginate,
    snapshot,
)

TIMES = "\N{MULTIPLICATION SIGN}"  # Stripe writes quantities as "2 <times> Gold"
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
_ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "pyg", "ugx", "xaf", "xof"}


def money(amount: int, currency: str) -> str:
    """`$20.00` like Stripe's line descriptions."""
    number = f"{amount:,}" if currency in _ZERO_DECIMAL else f"{amount / 100:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


# -- building ---------------------------------------------------------------------------


def new_invoice(
    state: State,
    customer: Obj,
    *,
    currency: str,
    billing_reason: str,
    collection_method: str = "charge_automatically",
    days_until_due: int | None = None,
    subscription: Obj | None = None,
    period: tuple[int, int] | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    default_payment_method: str | None = None,
    auto_advance: bool = True,
    invoice_id: str | None = None,
) -> Obj:
    """A draft invoice without lines (not stored: `store_invoice` keeps it)."""
    now = state.now()
    invoice_id = invoice_id or new_id("in")
    start, end = period or (now, now)
    invoice = build(
        "invoice",
        id=invoice_id,
        amount_due=0,
        amount_paid=0,
        amount_remaining=0,
        attempt_count=0,
        attempted=False,
        auto_advance=auto_advance,
        automatically_finalizes_at=now + 3600 if auto_advance else None,
        billing_reason=billing_reason,
        collection_method=collection_method,
        created=now,
        currency=currency,
        customer=customer["id"],
        customer_email=customer["email"],
        customer_name=customer["name"],
        customer_phone=customer["phone"],
        default_payment_method=default_payment_method,
        description=description,
        ending_balance=None,
        hosted_invoice_url=None,
        invoice_pdf=None,
        lines=list_object([], f"/v1/invoices/{invoice_id}/lines"),
        metadata=dict(metadata or {}),
        number=None,
        parent=None,
        period_end=end,
        period_start=start,
        starting_balance=customer["balance"],
        status="draft",
        status_transitions={
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        subtotal=0,
        subtotal_excluding_tax=0,
        total=0,
        total_excluding_tax=0,
    )
    invoice["_days_until_due"] = days_until_due
    # `invoice.subscription` left the API in 2025 (it is `parent.subscription_details`).
    invoice["_subscription"] = subscription["id"] if subscription else None
    invoice["_payment_intent"] = None
    if subscription is not None:
        invoice["parent"] = {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription["metadata"]),
                "subscription": subscription["id"],
            },
            "type": "subscription_details",
        }
    return invoice


def line_item(
    state: State,
    invoice: Obj,
    *,
    amount: int,
    description: str,
    period: tuple[int, int],
    quantity: int = 1,
    price: Obj | None = None,
    subscription: str | None = None,
    subscription_item: str | None = None,
    invoice_item: str | None = None,
    proration: bool = False,
    metadata: dict[str, str] | None = None,
    temporary: bool = False,
) -> Obj:
    """An invoice line (`line_item` shape) with Stripe's `parent` and `pricing` details."""
    if subscription_item is not None:
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoice_item,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        }
    else:
        parent = {
            "invoice_item_details": {
                "invoice_item": invoice_item,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    unit = price["unit_amount"] if price else amount // max(quantity, 1)
    return build(
        "line_item",
        id=new_id("il_tmp" if temporary else "il"),
        amount=amount,
        currency=invoice["currency"],
        description=description,
        invoice=invoice["id"],
        metadata=dict(metadata or {}),
        parent=parent,
        period={"end": period[1], "start": period[0]},
        pricing=pricing_of(price, unit),
        quantity=quantity,
        quantity_decimal=str(quantity),
        subscription=subscription,
        subtotal=amount,
    )


def pricing_of(price: Obj | None, unit: int) -> Obj:
    """A line's `pricing`: `price_details` only when a price is behind it (Stripe omits it)."""
    pricing: Obj = {"type": "price_details", "unit_amount_decimal": str(unit)}
    if price is not None:
        pricing["price_details"] = {"price": price["id"], "product": price["product"]}
    return pricing


def add_line(invoice: Obj, line: Obj) -> None:
    invoice["lines"]["data"].append(line)
    refresh_totals(invoice, invoice["starting_balance"])


def refresh_totals(invoice: Obj, balance: int) -> None:
    """Totals from the lines, with the customer balance applied like Stripe.

    A credit (negative balance) lowers `amount_due` down to zero; a debit adds to it;
    a negative total leaves the rest as credit in `ending_balance`.
    """
    total = sum(int(line["amount"]) for line in invoice["lines"]["data"])
    credited = int(invoice["pre_payment_credit_notes_amount"])
    invoice.update(subtotal=total, subtotal_excluding_tax=total, total=total)
    invoice["total_excluding_tax"] = total
    invoice["starting_balance"] = balance
    due = total + balance - credited
    invoice["amount_due"] = max(due, 0)
    invoice["amount_remaining"] = max(invoice["amount_due"] - invoice["amount_paid"], 0)
    invoice["_ending_balance"] = min(due, 0) if due < 0 else 0


def store_invoice(state: State, invoice: Obj) -> Obj:
    refresh_totals(invoice, invoice["starting_balance"])
    return state.add(invoice)


def pending_items(state: State, customer_id: str, subscription_id: str | None) -> list[Obj]:
    """Invoice items waiting for the next invoice of this customer (and subscription)."""
    return [
        item
        for item in state.scan("invoiceitem")
        if item["invoice"] is None
        and item["customer"] == customer_id
        and item["_subscription"] in (None, subscription_id)
    ]


def line_for_item(state: State, invoice: Obj, item: Obj, *, temporary: bool = False) -> Obj:
    price = state.find(item["_price"]) if item["_price"] else None
    return line_item(
        state,
        invoice,
        amount=item["amount"],
        description=item["description"] or "",
        period=(item["period"]["start"], item["period"]["end"]),
        quantity=item["quantity"],
        price=price,
        subscription=item["_subscription"],
        subscription_item=item["_subscription_item"],
        invoice_item=item["id"],
        proration=item["proration"],
        metadata=item["metadata"],
        temporary=temporary,
    )


def pull_items(state: State, invoice: Obj, items: list[Obj]) -> None:
    for item in items:
        state.touch(item)
        item["invoice"] = invoice["id"]
        add_line(invoice, line_for_item(state, invoice, item))


# -- lifecycle --------------------------------------------------------------------------


def finalize(state: State, invoice: Obj) -> None:
    """draft -> open: number, hosted URL, balance applied, due date; paid if nothing is due."""
    if invoice["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    customer = state.get("customer", invoice["customer"])
    ensure_currency(customer, invoice["currency"])
    refresh_totals(invoice, customer["balance"])
    now = state.now()
    ending = invoice.pop("_ending_balance", 0)
    invoice["ending_balance"] = ending
    if ending != invoice["starting_balance"]:
        adjust_balance(
            state,
            customer,
            ending - invoice["starting_balance"],
            "applied_to_invoice",
            invoice["currency"],
            invoice=invoice["id"],
        )
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    invoice.update(
        number=f"{customer['invoice_prefix']}-{sequence:04d}",
        status="open",
        effective_at=now,
        automatically_finalizes_at=None,
        hosted_invoice_url=f"{state.base_url}/i/{invoice['id']}",
        invoice_pdf=f"{state.base_url}/i/{invoice['id']}/pdf",
    )
    invoice["status_transitions"]["finalized_at"] = now
    if invoice["collection_method"] == "send_invoice":
        invoice["due_date"] = now + DAY * int(invoice["_days_until_due"] or 0)
    state.emit("invoice.finalized", invoice)
    if invoice["amount_due"] == 0:
        mark_paid(state, invoice)


def payment_method_for(state: State, invoice: Obj) -> str | None:
    """Invoice default, then subscription default, then the customer's default."""
    if invoice["default_payment_method"]:
        pm: str | None = invoice["default_payment_method"]
        return pm
    if invoice["_subscription"]:
        sub = state.get("subscription", invoice["_subscription"])
        if sub["default_payment_method"]:
            pm = sub["default_payment_method"]
            return pm
    return default_payment_method(state.get("customer", invoice["customer"]))


def invoice_intent(state: State, invoice: Obj, pm: Obj | None) -> Obj:
    """The payment intent collecting `invoice` (a new one unless one is still usable)."""
    pi_id = invoice["_payment_intent"]
    pi = state.find(pi_id) if pi_id else None
    if pi is None or pi["status"] in ("canceled", "succeeded"):
        reason = invoice["billing_reason"]
        pi = create_intent(
            state,
            amount=invoice["amount_remaining"],
            currency=invoice["currency"],
            customer=invoice["customer"],
            description={
                "subscription_create": "Subscription creation",
                "subscription_cycle": "Subscription cycle",
                "subscription_update": "Subscription update",
            }.get(reason, "Invoice payment"),
            payment_method=pm["id"] if pm else None,
        )
        pi["_invoice"] = invoice["id"]
        invoice["_payment_intent"] = pi["id"]
        payment = build(
            "invoice_payment",
            id=new_id("inpay"),
            amount_paid=None,
            amount_requested=invoice["amount_remaining"],
            created=state.now(),
            currency=invoice["currency"],
            invoice=invoice["id"],
            is_default=True,
            payment={"payment_intent": pi["id"], "type": "payment_intent"},
            status="open",
            status_transitions={"canceled_at": None, "paid_at": None},
        )
        state.add(payment)
        pi["_invoice_payment"] = payment["id"]
    elif pi["amount"] != invoice["amount_remaining"]:
        pi["amount"] = invoice["amount_remaining"]  # a credit note lowered what is due
    return pi


def collect(
    state: State, invoice: Obj, pm_id: str | None = None, *, off_session: bool = True
) -> StripeError | None:
    """Charge an open invoice; the payment hook below settles it either way."""
    if invoice["amount_remaining"] == 0:
        mark_paid(state, invoice)
        return None
    customer = state.get("customer", invoice["customer"])
    pm_id = pm_id or payment_method_for(state, invoice)
    pm = customer_payment_method(state, customer, pm_id, "payment_method") if pm_id else None
    pi = invoice_intent(state, invoice, pm)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if pm is None:
        _payment_failed(state, invoice, pi)
        return invalid(
            "This customer has no attached payment source or default payment method. "
            "Please consider adding a default payment method.",
            code="resource_missing",
        )
    return confirm(state, pi, pm, off_session=off_session)


def _settle(state: State, pi: Obj) -> None:
    """Payment hook: an invoice's payment intent succeeded, failed or needs 3DS."""
    invoice_id = pi.get("_invoice")
    invoice = state.find(invoice_id) if invoice_id else None
    if invoice is None or invoice["status"] != "open":
        return
    if pi["status"] == "succeeded":
        mark_paid(state, invoice, pi)
    elif pi["status"] in ("requires_payment_method", "requires_action"):
        _payment_failed(state, invoice, pi)


PAYMENT_HOOKS.append(_settle)


def _payment_failed(state: State, invoice: Obj, pi: Obj) -> None:
    invoice["next_payment_attempt"] = None
    state.emit("invoice.payment_failed", invoice)
    if pi["status"] == "requires_action":
        state.emit("invoice.payment_action_required", invoice)
    sub_id = invoice["_subscription"]
    if sub_id and invoice["billing_reason"] != "subscription_create":
        sub = state.get("subscription", sub_id)
        if sub["status"] in ("active", "trialing"):
            sub_before = snapshot(sub)
            sub["status"] = "past_due"
            state.emit_update("customer.subscription.updated", sub, sub_before)


def mark_paid(
    state: State, invoice: Obj, pi: Obj | None = None, *, out_of_band: bool = False
) -> None:
    now = state.now()
    before = snapshot(invoice)
    invoice.update(
        status="paid",
        amount_paid=invoice["amount_paid"] + invoice["amount_remaining"],
        amount_remaining=0,
        auto_advance=False,
        next_payment_attempt=None,
    )
    invoice["status_transitions"]["paid_at"] = now
    if pi is not None:
        payment = state.get("invoice_payment", pi["_invoice_payment"])
        payment.update(status="paid", amount_paid=pi["amount_received"])
        payment["status_transitions"]["paid_at"] = now
    state.emit("invoice.paid", invoice, {"status": before["status"]})
    if not out_of_band:
        state.emit("invoice.payment_succeeded", invoice)
    sub_id = invoice["_subscription"]
    if sub_id:
        sub = state.get("subscription", sub_id)
        if sub["status"] in ("incomplete", "past_due", "unpaid") and not _open_invoices(
            state, sub_id
        ):
            sub_before = snapshot(sub)
            sub["status"] = "active"
            state.emit_update("customer.subscription.updated", sub, sub_before)


def _open_invoices(state: State, sub_id: str) -> list[Obj]:
    return list_filter(state.scan("invoice"), _subscription=sub_id, status="open")


def void(state: State, invoice: Obj) -> None:
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only void an open or uncollectible invoice; this one is {invoice['status']}.",
            code="invoice_not_editable",
        )
    before = snapshot(invoice)
    invoice["status"] = "void"
    invoice["status_transitions"]["voided_at"] = state.now()
    _return_applied_balance(state, invoice)
    pi = state.find(invoice["_payment_intent"]) if invoice["_payment_intent"] else None
    if pi is not None and pi["status"] not in ("succeeded", "canceled"):
        pi.update(status="canceled", canceled_at=state.now(), cancellation_reason="void_invoice")
        state.emit("payment_intent.canceled", pi)
    state.emit("invoice.voided", invoice, {"status": before["status"]})


def _return_applied_balance(state: State, invoice: Obj) -> None:
    applied = int(invoice["ending_balance"] or 0) - int(invoice["starting_balance"])
    if applied:
        customer = state.get("customer", invoice["customer"])
        adjust_balance(
            state,
            customer,
            -applied,
            "unapplied_from_invoice",
            invoice["currency"],
            invoice=invoice["id"],
        )


def mark_uncollectible(state: State, invoice: Obj) -> None:
    if invoice["status"] != "open":
        raise invalid(
            "You can only mark an open invoice as uncollectible.", code="invoice_not_editable"
        )
    before = snapshot(invoice)
    invoice["status"] = "uncollectible"
    invoice["status_transitions"]["marked_uncollectible_at"] = state.now()
    state.emit("invoice.marked_uncollectible", invoice, {"status": before["status"]})


# -- endpoints --------------------------------------------------------------------------


@route("POST", "/v1/invoices")
def create_invoice(state: State, p: Params) -> Obj:
    customer = state.get("customer", p.req_text("customer"), "customer")
    method = p.choice(
        "collection_method", ("charge_automatically", "send_invoice"), "charge_automatically"
    )
    days = p.integer("days_until_due")
    if method == "send_invoice" and days is None and not p.has("due_date"):
        raise invalid(
            "Invoices with collection_method=send_invoice need days_until_due or due_date.",
            param="days_until_due",
        )
    subscription = None
    if p.text("subscription"):
        subscription = state.get("subscription", p.text("subscription"), "subscription")
    currency = p.text("currency") or customer["currency"] or "usd"
    invoice = new_invoice(
        state,
        customer,
        currency=currency,
        billing_reason="manual",
        collection_method=method or "charge_automatically",
        days_until_due=days,
        subscription=subscription,
        description=p.text("description"),
        metadata=p.metadata(),
        default_payment_method=p.text("default_payment_method"),
        auto_advance=p.flag("auto_advance", False),
    )
    store_invoice(state, invoice)
    behavior = p.choice("pending_invoice_items_behavior", ("include", "exclude"), "exclude")
    if behavior == "include":
        pull_items(state, invoice, pending_items(state, customer["id"], invoice["_subscription"]))
    state.emit("invoice.created", invoice)
    return invoice


@route("GET", "/v1/invoices/{invoice_id}")
def retrieve_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    return state.get("invoice", invoice_id)


@route("GET", "/v1/invoices/{invoice_id}/lines")
def list_invoice_lines(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    return paginate(invoice["lines"]["data"], p, f"/v1/invoices/{invoice_id}/lines")


@route("GET", "/v1/invoices")
def list_invoices(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("invoice"),
        customer=p.text("customer"),
        _subscription=p.text("subscription"),
        status=p.text("status"),
        collection_method=p.text("collection_method"),
    )
    return paginate(newest_first(created_filter(items, p)), p, "/v1/invoices")


@route("POST", "/v1/invoices/{invoice_id}")
def update_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    before = snapshot(invoice)
    apply_metadata(invoice["metadata"], p.metadata())
    if p.has("description"):
        invoice["description"] = p.text("description")
    if p.has("auto_advance"):
        invoice["auto_advance"] = p.flag("auto_advance")
    if p.has("days_until_due") or p.has("default_payment_method"):
        if invoice["status"] != "draft":
            raise invalid(
                "Only draft invoices can change payment terms.", code="invoice_not_editable"
            )
        if p.has("days_until_due"):
            invoice["_days_until_due"] = p.integer("days_until_due")
        if p.has("default_payment_method"):
            invoice["default_payment_method"] = p.text("default_payment_method")
    state.emit_update("invoice.updated", invoice, before)
    return invoice


@route("DELETE", "/v1/invoices/{invoice_id}")
def delete_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    if invoice["status"] != "draft":
        raise invalid("You can only delete draft invoices.", code="invoice_not_editable")
    for item in list_filter(state.all("invoiceitem"), invoice=invoice_id):
        item["invoice"] = None
    state.remove(invoice)
    state.emit("invoice.deleted", invoice)
    return deleted("invoice", invoice_id)


@route("POST", "/v1/invoices/{invoice_id}/finalize")
def finalize_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    finalize(state, invoice)
    if p.has("auto_advance"):
        invoice["auto_advance"] = p.flag("auto_advance")
    return invoice


@route("POST", "/v1/invoices/{invoice_id}/pay")
def pay_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    if invoice["status"] == "draft":
        finalize(state, invoice)
        if invoice["status"] == "paid":
            return invoice
    if invoice["status"] == "paid":
        raise invalid("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] != "open":
        raise invalid(
            f"You can only pay an open invoice; this one is {invoice['status']}.",
            code="invoice_not_editable",
        )
    if p.flag("paid_out_of_band"):
        mark_paid(state, invoice, out_of_band=True)
        return invoice
    error = collect(
        state, invoice, p.text("payment_method"), off_session=p.flag("off_session", True)
    )
    if error is not None:
        raise error
    if invoice["status"] != "paid":
        raise card_error(
            "Payment for this invoice requires a payment method with 3D Secure authentication.",
            "invoice_payment_intent_requires_action",
            extra={
                "payment_intent": public(state.get("payment_intent", invoice["_payment_intent"]))
            },
        )
    return invoice


@route("POST", "/v1/invoices/{invoice_id}/void")
def void_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    void(state, invoice)
    return invoice


@route("POST", "/v1/invoices/{invoice_id}/mark_uncollectible")
def mark_invoice_uncollectible(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    mark_uncollectible(state, invoice)
    return invoice


@route("POST", "/v1/invoices/{invoice_id}/send")
def send_invoice(state: State, p: Params, invoice_id: str) -> Obj:
    invoice = state.get("invoice", invoice_id)
    if invoice["status"] != "open" or invoice["collection_method"] != "send_invoice":
        raise invalid("You can only send open invoices with collection_method=send_invoice.")
    state.emit("invoice.sent", invoice)
    return invoice


@route("GET", "/v1/invoice_payments")
def list_invoice_payments(state: State, p: Params) -> Obj:
    items = list_filter(state.scan("invoice_payment"), invoice=p.text("invoice"))
    return paginate(newest_first(items), p, "/v1/invoice_payments")


@route("GET", "/v1/invoice_payments/{payment_id}")
def retrieve_invoice_payment(state: State, p: Params, payment_id: str) -> Obj:
    return state.get("invoice_payment", payment_id)


# -- invoice items ----------------------------------------------------------------------


def new_invoice_item(
    state: State,
    customer: Obj,
    *,
    amount: int,
    currency: str,
    description: str | None,
    period: tuple[int, int],
    quantity: int = 1,
    price: Obj | None = None,
    subscription: str | None = None,
    subscription_item: str | None = None,
    proration: bool = False,
    metadata: dict[str, str] | None = None,
) -> Obj:
    """A pending invoice item (stored, `invoiceitem.created` emitted)."""
    item = build(
        "invoiceitem",
        id=new_id("ii"),
        amount=amount,
        currency=currency,
        customer=customer["id"],
        date=state.now(),
        description=description,
        invoice=None,
        metadata=dict(metadata or {}),
        net_amount=amount,
        parent=(
            {
                # Stripe omits `subscription_item` when the item is not about one.
                "subscription_details": {"subscription": subscription}
                | ({"subscription_item": subscription_item} if subscription_item else {}),
                "type": "subscription_details",
            }
            if subscription
            else None
        ),
        period={"end": period[1], "start": period[0]},
        pricing=pricing_of(price, price["unit_amount"] if price else amount // max(quantity, 1)),
        proration=proration,
        quantity=quantity,
        quantity_decimal=str(quantity),
    )
    item["_price"] = price["id"] if price else None
    item["_subscription"] = subscription
    item["_subscription_item"] = subscription_item
    state.add(item)
    state.emit("invoiceitem.created", item)
    return item


@route("POST", "/v1/invoiceitems")
def create_invoice_item(state: State, p: Params) -> Obj:
    customer = state.get("customer", p.req_text("customer"), "customer")
    price_id = p.text("price") or p.sub("pricing").text("price")
    price = state.get("price", price_id, "price") if price_id else None
    quantity = p.integer("quantity", 1) or 1
    if price is not None:
        amount = int(price["unit_amount"]) * quantity
        currency = price["currency"]
    else:
        amount = p.req_integer("amount")
        currency = p.req_text("currency").lower()
    subscription = p.text("subscription")
    if subscription:
        state.get("subscription", subscription, "subscription")
    period = p.sub("period")
    now = state.now()
    item = new_invoice_item(
        state,
        customer,
        amount=amount,
        currency=currency,
        description=p.text("description"),
        period=(period.integer("start", now) or now, period.integer("end", now) or now),
        quantity=quantity,
        price=price,
        subscription=subscription,
        metadata=p.metadata(),
    )
    invoice_id = p.text("invoice")
    if invoice_id:
        invoice = state.get("invoice", invoice_id, "invoice")
        if invoice["status"] != "draft":
            raise invalid("You can only add invoice items to draft invoices.", param="invoice")
        pull_items(state, invoice, [item])
    return item


@route("GET", "/v1/invoiceitems/{item_id}")
def retrieve_invoice_item(state: State, p: Params, item_id: str) -> Obj:
    return state.get("invoiceitem", item_id)


@route("GET", "/v1/invoiceitems")
def list_invoice_items(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("invoiceitem"), customer=p.text("customer"), invoice=p.text("invoice")
    )
    if p.has("pending"):
        pending = p.flag("pending")
        items = [i for i in items if (i["invoice"] is None) == pending]
    return paginate(newest_first(items), p, "/v1/invoiceitems")


def _editable_item(state: State, item_id: str) -> Obj:
    item = state.get("invoiceitem", item_id)
    if item["invoice"] is not None:
        invoice = state.get("invoice", item["invoice"])
        if invoice["status"] != "draft":
            raise invalid(
                "This invoice item is already on a finalized invoice and cannot be changed.",
                code="invoice_not_editable",
            )
    return item


@route("POST", "/v1/invoiceitems/{item_id}")
def update_invoice_item(state: State, p: Params, item_id: str) -> Obj:
    item = _editable_item(state, item_id)
    if p.has("amount"):
        item["amount"] = item["net_amount"] = p.req_integer("amount")
    if p.has("description"):
        item["description"] = p.text("description")
    apply_metadata(item["metadata"], p.metadata())
    if item["invoice"] is not None:
        _rebuild_item_line(state, item)
    # Stripe has no `invoiceitem.updated` event: an update announces nothing.
    return item


def _rebuild_item_line(state: State, item: Obj) -> None:
    invoice = state.get("invoice", item["invoice"])
    lines = invoice["lines"]["data"]
    for i, line in enumerate(lines):
        details = (
            line["parent"]["invoice_item_details"] or line["parent"]["subscription_item_details"]
        )
        if details["invoice_item"] == item["id"]:
            lines[i] = line_for_item(state, invoice, item)
    refresh_totals(invoice, invoice["starting_balance"])


@route("DELETE", "/v1/invoiceitems/{item_id}")
def delete_invoice_item(state: State, p: Params, item_id: str) -> Obj:
    item = _editable_item(state, item_id)
    if item["invoice"] is not None:
        invoice = state.get("invoice", item["invoice"])
        invoice["lines"]["data"] = [
            line
            for line in invoice["lines"]["data"]
            if (
                line["parent"]["invoice_item_details"]
                or line["parent"]["subscription_item_details"]
            )["invoice_item"]
            != item_id
        ]
        refresh_totals(invoice, invoice["starting_balance"])
    state.remove(item)
    state.emit("invoiceitem.deleted", item)
    return deleted("invoiceitem", item_id)
