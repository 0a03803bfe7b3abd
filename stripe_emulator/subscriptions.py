"""Subscriptions: create, change with proration (and its preview), cancel, pause, resume, renew."""

from __future__ import annotations

from dataclasses import dataclass

from stripe_emulator.catalog import new_price, plan_of
from stripe_emulator.clock import DAY, add_interval
from stripe_emulator.customers import default_payment_method, ensure_currency
from stripe_emulator.errors import StripeError, card_error, invalid, missing
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id
from stripe_emulator.invoices import (
    TIMES,
    add_line,
    collect,
    finalize,
    invoice_intent,
    line_for_item,
    line_item,
    mark_uncollectible,
    money,
    new_invoice,
    new_invoice_item,
    pending_items,
    pull_items,
    refresh_totals,
    store_invoice,
    void,
)
from stripe_emulator.objects import Obj, build, deleted, list_object, public
from stripe_emulator.payments import card_behaviour, customer_payment_method
from stripe_emulator.proration import ItemState, ProrationLine, proration_lines
from stripe_emulator.routing import route
from stripe_emulator.state import State, list_filter, newest_first, paginate, snapshot

STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
)
# Statuses whose periods keep rolling over.
RENEWING = ("trialing", "active", "past_due", "unpaid")
PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")
INCOMPLETE_EXPIRY = 23 * 3600


# -- reading a subscription -------------------------------------------------------------


def period_of(sub: Obj) -> tuple[int, int]:
    first = sub["items"]["data"][0]
    return int(first["current_period_start"]), int(first["current_period_end"])


def _set_period(sub: Obj, start: int, end: int) -> None:
    for item in sub["items"]["data"]:
        item["current_period_start"] = start
        item["current_period_end"] = end


def _cadence(price: Obj) -> tuple[str, int]:
    recurring = price["recurring"]
    return str(recurring["interval"]), int(recurring["interval_count"])


def _following_period(sub: Obj, cadence: tuple[str, int]) -> tuple[int, int]:
    """The billing period after the current one (the first paid one after a trial)."""
    _, end = period_of(sub)
    interval, count = cadence
    if sub["status"] == "trialing":
        return end, add_interval(end, interval, count)
    # Periods count from the anchor so month ends stay put (Jan 31 -> Feb 28 -> Mar 31).
    periods = sub["_period_index"] + 2
    return end, add_interval(sub["billing_cycle_anchor"], interval, count * periods)


def item_states(sub: Obj) -> list[ItemState]:
    return [
        ItemState(item["id"], item["price"], int(item["quantity"]), dict(item["metadata"]))
        for item in sub["items"]["data"]
    ]


def _payment_method(state: State, sub: Obj) -> str | None:
    pm: str | None = sub["default_payment_method"]
    return pm or default_payment_method(state.get("customer", sub["customer"]))


def _names(state: State, items: list[ItemState]) -> dict[str, str]:
    return {i.price["product"]: state.get("product", i.price["product"])["name"] for i in items}


# -- items ------------------------------------------------------------------------------


def _price_for(state: State, ip: Params) -> Obj:
    if ip.has("price_data"):
        data = ip.sub("price_data")
        if not data.has("recurring"):
            raise missing(data.name("recurring"))
        price = new_price(state, data)
        price["active"] = False
        return price
    price = state.get("price", ip.req_text("price"), ip.name("price"))
    if not price["active"]:
        raise invalid(
            "The price specified is inactive. This field only accepts active prices.",
            param=ip.name("price"),
        )
    if price["recurring"] is None:
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            "with `type=recurring`.",
            param=ip.name("price"),
        )
    return price


def _parse_items(state: State, p: Params, current: list[ItemState]) -> list[ItemState]:
    """The items after applying `items[i][id|price|quantity|metadata|deleted]` to `current`."""
    result = {item.item_id: item for item in current}
    for ip in p.subs("items"):
        item_id = ip.text("id")
        if item_id is None:
            price = _price_for(state, ip)
            metadata: dict[str, str] = {}
            apply_metadata(metadata, ip.metadata())
            new_item = ItemState(new_id("si"), price, ip.integer("quantity", 1) or 1, metadata)
            result[new_item.item_id] = new_item
            continue
        existing = result.get(item_id)
        if existing is None:
            raise invalid(
                f"Subscription item {item_id} does not belong to this subscription.",
                param=ip.name("id"),
            )
        if ip.flag("deleted"):
            del result[item_id]
            continue
        has_price = ip.has("price") or ip.has("price_data")
        price = _price_for(state, ip) if has_price else existing.price
        metadata = dict(existing.metadata)
        apply_metadata(metadata, ip.metadata())
        quantity = ip.integer("quantity", existing.quantity)
        result[item_id] = ItemState(item_id, price, quantity or 0, metadata)
    return list(result.values())


def _validate_items(items: list[ItemState], currency: str | None) -> tuple[str, tuple[str, int]]:
    if not items:
        raise missing("items")
    currencies = {i.price["currency"] for i in items}
    cadences = {_cadence(i.price) for i in items}
    if len(currencies) > 1 or (currency is not None and currencies != {currency}):
        raise invalid("All prices on a subscription must have the same currency.", param="items")
    if len(cadences) > 1:
        raise invalid(
            "The price specified has a different billing interval from other prices on this "
            "subscription. All prices on a subscription must share the same interval.",
            param="items",
        )
    return currencies.pop(), cadences.pop()


def _item_object(state: State, sub_id: str, spec: ItemState, period: tuple[int, int]) -> Obj:
    return build(
        "subscription_item",
        id=spec.item_id,
        created=state.now(),
        current_period_end=period[1],
        current_period_start=period[0],
        discounts=[],
        metadata=dict(spec.metadata),
        plan=plan_of(spec.price),
        price=public(spec.price),
        quantity=spec.quantity,
        subscription=sub_id,
        tax_rates=[],
    )


def _apply_items(state: State, sub: Obj, items: list[ItemState]) -> None:
    existing = {item["id"]: item for item in sub["items"]["data"]}
    period = period_of(sub)
    data = []
    for spec in items:
        item = existing.get(spec.item_id)
        if item is None:
            data.append(_item_object(state, sub["id"], spec, period))
            continue
        item.update(
            price=public(spec.price),
            plan=plan_of(spec.price),
            quantity=spec.quantity,
            metadata=dict(spec.metadata),
        )
        data.append(item)
    sub["items"]["data"] = data


# -- invoices for a subscription ---------------------------------------------------------


def _period_line(
    state: State,
    invoice: Obj,
    sub_id: str | None,
    spec: ItemState,
    period: tuple[int, int],
    *,
    trial: bool = False,
    temporary: bool = False,
) -> Obj:
    name = state.get("product", spec.price["product"])["name"]
    interval, count = _cadence(spec.price)
    every = interval if count == 1 else f"{count} {interval}s"
    unit = money(int(spec.price["unit_amount"]), spec.price["currency"])
    description = (
        f"Trial period for {name}"
        if trial
        else f"{spec.quantity} {TIMES} {name} (at {unit} / {every})"
    )
    return line_item(
        state,
        invoice,
        amount=0 if trial else spec.amount,
        description=description,
        period=period,
        quantity=spec.quantity,
        price=spec.price,
        subscription=sub_id,
        subscription_item=spec.item_id,
        temporary=temporary,
    )


def _proration_line(state: State, invoice: Obj, sub_id: str, line: ProrationLine) -> Obj:
    return line_item(
        state,
        invoice,
        amount=line.amount,
        description=line.description,
        period=line.period,
        quantity=line.quantity,
        price=line.price,
        subscription=sub_id,
        subscription_item=line.item_id,
        proration=True,
        temporary=True,
    )


def _subscription_invoice(
    state: State,
    sub: Obj,
    billing_reason: str,
    *,
    invoice_period: tuple[int, int],
    line_period: tuple[int, int] | None,
    trial: bool = False,
) -> Obj:
    """Draft invoice with pending items then one line per item for `line_period`; stored."""
    customer = state.get("customer", sub["customer"])
    invoice = new_invoice(
        state,
        customer,
        currency=sub["currency"],
        billing_reason=billing_reason,
        collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"],
        subscription=sub,
        period=invoice_period,
    )
    store_invoice(state, invoice)
    pull_items(state, invoice, pending_items(state, customer["id"], sub["id"]))
    if line_period is not None:
        for spec in item_states(sub):
            add_line(
                invoice, _period_line(state, invoice, sub["id"], spec, line_period, trial=trial)
            )
    sub["latest_invoice"] = invoice["id"]
    return invoice


def _bill(state: State, sub: Obj, invoice: Obj, *, off_session: bool) -> StripeError | None:
    """Announce, finalize and (for automatic collection) charge a subscription invoice."""
    state.emit("invoice.created", invoice)
    finalize(state, invoice)
    if invoice["status"] == "open" and sub["collection_method"] == "charge_automatically":
        return collect(state, invoice, _payment_method(state, sub), off_session=off_session)
    return None


def _expected_due(state: State, customer: Obj, sub_id: str | None, amount: int) -> int:
    pending = sum(int(i["amount"]) for i in pending_items(state, customer["id"], sub_id))
    return max(amount + pending + int(customer["balance"]), 0)


def _refuse_unless_payable(state: State, pm_id: str | None, due: int) -> None:
    """`error_if_incomplete`: fail the request, changing nothing, when the charge would fail."""
    if due == 0:
        return
    card = card_behaviour(state, pm_id) if pm_id else None
    if card is None:
        raise invalid(
            "This customer has no attached payment source or default payment method.",
            code="resource_missing",
        )
    if card.outcome == "declines":
        raise card_error(card.message, card.code, decline_code=card.decline_code)
    if card.outcome == "authenticates":
        raise card_error(
            "Payment for this subscription requires additional user action before it can be "
            "completed successfully.",
            "subscription_payment_intent_requires_action",
        )


# -- create -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSubscription:
    """Everything `start_subscription` needs, from API params or a completed Checkout."""

    customer: Obj
    items: list[ItemState]
    collection_method: str = "charge_automatically"
    days_until_due: int | None = None
    payment_behavior: str = "allow_incomplete"
    default_payment_method: str | None = None
    metadata: dict[str, str] | None = None
    description: str | None = None
    trial_end: int | None = None
    trial_end_behavior: str = "create_invoice"
    off_session: bool = False


def start_subscription(state: State, new: NewSubscription) -> Obj:
    """Create a subscription and bill its first invoice; nothing changes if it must fail."""
    customer = new.customer
    currency, (interval, count) = _validate_items(new.items, None)
    if customer["currency"] not in (None, currency):
        ensure_currency(customer, currency)  # raises: one currency per customer
    now = state.now()
    trial_end = new.trial_end
    pm_id = new.default_payment_method or default_payment_method(customer)
    automatic = new.collection_method == "charge_automatically"
    behavior = new.payment_behavior
    due = _expected_due(state, customer, None, 0 if trial_end else sum(i.amount for i in new.items))
    strict = behavior in ("error_if_incomplete", "pending_if_incomplete") or pm_id is None
    if automatic and behavior != "default_incomplete" and trial_end is None and strict:
        _refuse_unless_payable(state, pm_id, due)
    if new.default_payment_method:
        pm_id = customer_payment_method(
            state, customer, new.default_payment_method, "default_payment_method"
        )["id"]

    # Decided up front (test cards are deterministic) so `customer.subscription.created`
    # already carries the final status, as Stripe's does for a synchronous first payment.
    card = card_behaviour(state, pm_id) if pm_id else None
    pays_now = behavior != "default_incomplete" and card is not None and card.outcome == "succeeds"
    if trial_end is not None:
        status = "trialing"
    elif not automatic or due == 0 or pays_now:
        status = "active"
    else:
        status = "incomplete"
    sub_id = new_id("sub")
    period = (now, trial_end or add_interval(now, interval, count))
    sub = build(
        "subscription",
        id=sub_id,
        billing_cycle_anchor=period[1] if trial_end else now,
        collection_method=new.collection_method,
        created=now,
        currency=currency,
        customer=customer["id"],
        days_until_due=new.days_until_due,
        default_payment_method=pm_id if new.default_payment_method else None,
        description=new.description,
        items=list_object(
            [_item_object(state, sub_id, spec, period) for spec in new.items],
            f"/v1/subscription_items?subscription={sub_id}",
        ),
        metadata=dict(new.metadata or {}),
        start_date=now,
        status=status,
        trial_end=trial_end,
        trial_start=now if trial_end else None,
        trial_settings={
            # `billing_cycle_anchor` unset means `now`: a trial's end starts the cycle.
            "end_behavior": {
                "billing_cycle_anchor": None,
                "missing_payment_method": new.trial_end_behavior,
            }
        },
    )
    sub["_period_index"] = 0
    invoice = _subscription_invoice(
        state,
        sub,
        "subscription_create",
        invoice_period=(now, now),
        line_period=period,
        trial=trial_end is not None,
    )
    state.add(sub)
    state.emit("customer.subscription.created", sub)
    if behavior == "default_incomplete" and automatic and due > 0:
        # The first payment is left for the customer to confirm.
        state.emit("invoice.created", invoice)
        finalize(state, invoice)
        invoice_intent(state, invoice, state.find(pm_id) if pm_id else None)
    else:
        _bill(state, sub, invoice, off_session=new.off_session)
    return sub


@route("POST", "/v1/subscriptions")
def create_subscription(state: State, p: Params) -> Obj:
    method = p.choice(
        "collection_method", ("charge_automatically", "send_invoice"), "charge_automatically"
    )
    days_until_due = p.integer("days_until_due")
    if method == "send_invoice" and days_until_due is None:
        raise missing("days_until_due")
    behavior = p.choice(
        "payment_behavior",
        ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"),
        "allow_incomplete",
    )
    metadata: dict[str, str] = {}
    apply_metadata(metadata, p.metadata())
    ending = p.sub("trial_settings").sub("end_behavior")
    return start_subscription(
        state,
        NewSubscription(
            customer=state.get("customer", p.req_text("customer"), "customer"),
            items=_parse_items(state, p, []),
            collection_method=method or "charge_automatically",
            days_until_due=days_until_due,
            payment_behavior=behavior or "allow_incomplete",
            default_payment_method=p.text("default_payment_method"),
            metadata=metadata,
            description=p.text("description"),
            trial_end=_trial_end(p, state.now()),
            trial_end_behavior=ending.choice(
                "missing_payment_method", ("create_invoice", "pause", "cancel"), "create_invoice"
            )
            or "create_invoice",
            off_session=p.flag("off_session"),
        ),
    )


def _trial_end(p: Params, now: int) -> int | None:
    if p.text("trial_end") == "now":
        return None
    end = p.integer("trial_end")
    days = p.integer("trial_period_days")
    if end is None and days:
        end = now + days * DAY
    if end is not None and end <= now:
        raise invalid("trial_end must be in the future.", param="trial_end")
    return end


# -- change, preview --------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What an update does to the items, and the proration it bills."""

    old: list[ItemState]
    new: list[ItemState]
    behavior: str
    proration_date: int
    resets_period: bool
    prorations: list[ProrationLine]

    @property
    def invoices_now(self) -> bool:
        return self.behavior == "always_invoice" or self.resets_period


def plan_change(state: State, sub: Obj, p: Params) -> Change:
    """Parse item and proration params (update or `subscription_details`) without changing state."""
    old = item_states(sub)
    new = _parse_items(state, p, old) if p.has("items") else old
    _validate_items(new, sub["currency"])
    behavior = p.choice("proration_behavior", PRORATION_BEHAVIORS, "create_prorations")
    assert behavior is not None
    start, end = period_of(sub)
    proration_date = p.integer("proration_date", state.now())
    assert proration_date is not None
    if not start <= proration_date <= end:
        raise invalid(
            "proration_date must be within the subscription's current billing period "
            f"({start} - {end}).",
            param=p.name("proration_date"),
        )
    anchor = anchor_behavior(p)
    # A new interval, or `billing_cycle_anchor=now`, starts a new period now, billed at once.
    resets = anchor == "now" or _cadence(new[0].price) != _cadence(old[0].price)
    prorations: list[ProrationLine] = []
    if behavior != "none" and sub["status"] != "trialing":
        prorations = proration_lines(
            old,
            new,
            period=(start, end),
            proration_date=proration_date,
            product_names=_names(state, old + new),
            charge_remaining=not resets,
        )
    return Change(old, new, behavior, proration_date, resets, prorations)


def anchor_behavior(p: Params, default: str = "unchanged") -> str:
    """`billing_cycle_anchor[type]=now|unchanged` (an object since 2026: `{"type": "now"}`)."""
    if not p.has("billing_cycle_anchor"):
        return default
    return p.sub("billing_cycle_anchor").choice("type", ("now", "unchanged"), default) or default


def _new_period(sub: Obj, now: int) -> tuple[int, int]:
    interval, count = _cadence(sub["items"]["data"][0]["price"])
    return now, add_interval(now, interval, count)


def _add_prorations(state: State, sub: Obj, lines: list[ProrationLine]) -> None:
    """Proration lines become pending invoice items of the subscription."""
    customer = state.get("customer", sub["customer"])
    for line in lines:
        new_invoice_item(
            state,
            customer,
            amount=line.amount,
            currency=sub["currency"],
            description=line.description,
            period=line.period,
            quantity=line.quantity,
            price=line.price,
            subscription=sub["id"],
            subscription_item=line.item_id,
            proration=True,
        )


def _apply_change(state: State, sub: Obj, change: Change) -> None:
    """New items; an interval change also starts a new period now."""
    _apply_items(state, sub, change.new)
    if change.resets_period:
        _set_period(sub, *_new_period(sub, state.now()))
        sub["billing_cycle_anchor"] = state.now()
        sub["_period_index"] = 0


def _invoice_change(state: State, sub: Obj, change: Change) -> Obj | None:
    """Prorations as pending items, and the draft invoice billing them now, if the change
    is billed now (always_invoice, interval change)."""
    _add_prorations(state, sub, change.prorations)
    if not change.invoices_now:
        return None
    now = state.now()
    return _subscription_invoice(
        state,
        sub,
        "subscription_update",
        invoice_period=(now, now),
        line_period=period_of(sub) if change.resets_period else None,
    )


@route("POST", "/v1/invoices/create_preview")
def create_preview(state: State, p: Params) -> Obj:
    """The invoice an update would bill (now, or at the next renewal), computed without billing."""
    details = p.sub("subscription_details")
    sub_id = p.text("subscription")
    now = state.now()
    if sub_id is None:
        customer = state.get("customer", p.req_text("customer"), "customer")
        items = _parse_items(state, details, [])
        currency, (interval, count) = _validate_items(items, None)
        invoice = new_invoice(
            state,
            customer,
            currency=currency,
            billing_reason="subscription_create",
            invoice_id=new_id("upcoming_in"),
        )
        for line in _pending_lines(state, invoice, customer["id"], None):
            invoice["lines"]["data"].append(line)
        period = (now, add_interval(now, interval, count))
        for spec in items:
            invoice["lines"]["data"].append(
                _period_line(state, invoice, None, spec, period, temporary=True)
            )
        refresh_totals(invoice, customer["balance"])
        return invoice
    sub = state.get("subscription", sub_id, "subscription")
    customer = state.get("customer", sub["customer"])
    if p.text("customer") not in (None, customer["id"]):
        raise invalid("The subscription does not belong to this customer.", param="customer")
    change = plan_change(state, sub, details)
    start, end = period_of(sub)
    if not change.invoices_now and (sub["cancel_at_period_end"] or sub["status"] not in RENEWING):
        raise invalid(
            f"No upcoming invoices for customer: {customer['id']}", code="invoice_upcoming_none"
        )
    invoice = new_invoice(
        state,
        customer,
        currency=sub["currency"],
        billing_reason="subscription_update" if change.invoices_now else "upcoming",
        collection_method=sub["collection_method"],
        subscription=sub,
        period=(now, now) if change.invoices_now else (start, end),
        invoice_id=new_id("upcoming_in"),
    )
    lines = invoice["lines"]["data"]
    lines.extend(_pending_lines(state, invoice, customer["id"], sub["id"]))
    lines.extend(_proration_line(state, invoice, sub["id"], line) for line in change.prorations)
    cadence = _cadence(change.new[0].price)
    next_period: tuple[int, int] | None = None
    if change.resets_period:
        next_period = (now, add_interval(now, *cadence))
    elif not change.invoices_now:
        next_period = _following_period(sub, cadence)
    if next_period is not None:
        lines.extend(
            _period_line(state, invoice, sub["id"], spec, next_period, temporary=True)
            for spec in change.new
        )
    refresh_totals(invoice, customer["balance"])
    return invoice


def _pending_lines(state: State, invoice: Obj, customer_id: str, sub_id: str | None) -> list[Obj]:
    return [
        line_for_item(state, invoice, item, temporary=True)
        for item in pending_items(state, customer_id, sub_id)
    ]


# -- update -----------------------------------------------------------------------------


def _editable(sub: Obj) -> None:
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
        )


@route("POST", "/v1/subscriptions/{sub_id}")
def update_subscription(state: State, p: Params, sub_id: str) -> Obj:
    sub = state.get("subscription", sub_id)
    before = snapshot(sub)
    if set(p.data) - {"metadata", "cancellation_details", "expand"}:
        _editable(sub)
    changes_billing = any(p.has(k) for k in ("items", "proration_behavior", "billing_cycle_anchor"))
    change = plan_change(state, sub, p) if changes_billing else None
    behavior = p.choice(
        "payment_behavior",
        ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"),
        "allow_incomplete",
    )
    pm_param = p.text("default_payment_method")
    customer = state.get("customer", sub["customer"])
    if (
        change is not None
        and change.invoices_now
        and sub["collection_method"] == "charge_automatically"
        and behavior in ("error_if_incomplete", "pending_if_incomplete")
    ):
        amount = sum(line.amount for line in change.prorations)
        if change.resets_period:
            amount += sum(i.amount for i in change.new)
        due = _expected_due(state, customer, sub["id"], amount)
        _refuse_unless_payable(state, pm_param or _payment_method(state, sub), due)

    apply_metadata(sub["metadata"], p.metadata())
    if p.has("description"):
        sub["description"] = p.text("description")
    if p.has("default_payment_method"):
        sub["default_payment_method"] = (
            customer_payment_method(state, customer, pm_param, "default_payment_method")["id"]
            if pm_param
            else None
        )
    if p.has("collection_method"):
        sub["collection_method"] = p.choice(
            "collection_method", ("charge_automatically", "send_invoice")
        )
    if p.has("days_until_due"):
        sub["days_until_due"] = p.integer("days_until_due")
    if sub["collection_method"] == "send_invoice" and sub["days_until_due"] is None:
        raise missing("days_until_due")
    details = p.sub("cancellation_details")
    for field in ("comment", "feedback"):
        if details.has(field):
            sub["cancellation_details"][field] = details.text(field)
    if p.has("cancel_at_period_end"):
        _set_cancel_at(state, sub, period_of(sub)[1] if p.flag("cancel_at_period_end") else None)
        sub["cancel_at_period_end"] = p.flag("cancel_at_period_end")
    if p.has("cancel_at"):
        _set_cancel_at(state, sub, p.integer("cancel_at"))
        sub["cancel_at_period_end"] = False
    if p.has("pause_collection"):
        _set_pause(sub, p)
    if change is None:
        state.emit_update("customer.subscription.updated", sub, before)
        return sub
    _apply_change(state, sub, change)
    invoice = _invoice_change(state, sub, change)
    # Announced with its new latest_invoice, before that invoice's own events, like Stripe.
    state.emit_update("customer.subscription.updated", sub, before)
    if invoice is not None:
        _bill(state, sub, invoice, off_session=p.flag("off_session"))
    return sub


def _set_cancel_at(state: State, sub: Obj, moment: int | None) -> None:
    sub["cancel_at"] = moment
    sub["canceled_at"] = state.now() if moment is not None else None
    sub["cancellation_details"]["reason"] = "cancellation_requested" if moment is not None else None


def _set_pause(sub: Obj, p: Params) -> None:
    if p.is_empty("pause_collection"):
        sub["pause_collection"] = None
        return
    pause = p.sub("pause_collection")
    sub["pause_collection"] = {
        "behavior": pause.choice("behavior", ("keep_as_draft", "mark_uncollectible", "void")) or "",
        "resumes_at": pause.integer("resumes_at"),
    }
    if not sub["pause_collection"]["behavior"]:
        raise missing(pause.name("behavior"))


# -- cancel, resume ---------------------------------------------------------------------


def cancel_now(state: State, sub: Obj, reason: str = "cancellation_requested") -> None:
    before = snapshot(sub)
    now = state.now()
    sub.update(status="canceled", ended_at=now, canceled_at=sub["canceled_at"] or now)
    sub["cancellation_details"]["reason"] = sub["cancellation_details"]["reason"] or reason
    state.emit("customer.subscription.deleted", sub, {"status": before["status"]})


@route("DELETE", "/v1/subscriptions/{sub_id}")
def cancel_subscription(state: State, p: Params, sub_id: str) -> Obj:
    sub = state.get("subscription", sub_id)
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(
            f"This subscription has already been canceled: {sub_id}.", code="resource_missing"
        )
    details = p.sub("cancellation_details")
    for field in ("comment", "feedback"):
        if details.has(field):
            sub["cancellation_details"][field] = details.text(field)
    if p.flag("prorate") and sub["status"] in RENEWING:
        current = item_states(sub)
        credit = proration_lines(
            current,
            [],
            period=period_of(sub),
            proration_date=state.now(),
            product_names=_names(state, current),
        )
        _add_prorations(state, sub, credit)
    if p.flag("invoice_now") and pending_items(state, sub["customer"], sub["id"]):
        now = state.now()
        invoice = _subscription_invoice(
            state, sub, "subscription_update", invoice_period=(now, now), line_period=None
        )
        _bill(state, sub, invoice, off_session=True)
    cancel_now(state, sub)
    return sub


@route("POST", "/v1/subscriptions/{sub_id}/resume")
def resume_subscription(state: State, p: Params, sub_id: str) -> Obj:
    sub = state.get("subscription", sub_id)
    if sub["status"] != "paused":
        raise invalid(
            "Only subscriptions with status `paused` can be resumed.",
            code="subscription_not_paused",
        )
    before = snapshot(sub)
    now = state.now()
    anchor = anchor_behavior(p, "now")
    if anchor == "now":
        _set_period(sub, *_new_period(sub, now))
        sub["billing_cycle_anchor"] = now
        sub["_period_index"] = 0
    sub["status"] = "active"
    state.emit_update("customer.subscription.updated", sub, before)
    state.emit("customer.subscription.resumed", sub)
    invoice = _subscription_invoice(
        state, sub, "subscription_cycle", invoice_period=(now, now), line_period=period_of(sub)
    )
    _bill(state, sub, invoice, off_session=False)
    return sub


# -- read -------------------------------------------------------------------------------


@route("GET", "/v1/subscriptions/{sub_id}")
def retrieve_subscription(state: State, p: Params, sub_id: str) -> Obj:
    return state.get("subscription", sub_id)


@route("GET", "/v1/subscriptions")
def list_subscriptions(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("subscription"),
        customer=p.text("customer"),
        collection_method=p.text("collection_method"),
    )
    status = p.choice("status", (*STATUSES, "all", "ended"))
    if status is None:
        items = [s for s in items if s["status"] not in ("canceled", "incomplete_expired")]
    elif status == "ended":
        items = [s for s in items if s["status"] in ("canceled", "incomplete_expired")]
    elif status != "all":
        items = [s for s in items if s["status"] == status]
    price = p.text("price")
    if price:
        items = [s for s in items if any(i["price"]["id"] == price for i in s["items"]["data"])]
    return paginate(newest_first(items), p, "/v1/subscriptions")


@route("GET", "/v1/subscription_items")
def list_subscription_items(state: State, p: Params) -> Obj:
    sub = state.get("subscription", p.req_text("subscription"), "subscription")
    return paginate(sub["items"]["data"], p, f"/v1/subscription_items?subscription={sub['id']}")


@route("GET", "/v1/subscription_items/{item_id}")
def retrieve_subscription_item(state: State, p: Params, item_id: str) -> Obj:
    for sub in state.scan("subscription"):
        for item in sub["items"]["data"]:
            if item["id"] == item_id:
                found: Obj = item
                return found
    raise invalid(f"No such subscription item: '{item_id}'", code="resource_missing")


@route("DELETE", "/v1/customers/{customer_id}")
def delete_customer(state: State, p: Params, customer_id: str) -> Obj:
    """Deleting a customer cancels its subscriptions at once, so it lives with them."""
    customer = state.get("customer", customer_id)
    for sub in list_filter(state.all("subscription"), customer=customer_id):
        if sub["status"] not in ("canceled", "incomplete_expired"):
            cancel_now(state, sub)
    state.remove(customer)
    state.emit("customer.deleted", customer)
    return deleted("customer", customer_id)


# -- time passing -----------------------------------------------------------------------


def next_due(state: State, sub: Obj) -> int | None:
    """When the clock next has something to do for `sub`."""
    status = sub["status"]
    if status == "incomplete":
        return int(sub["created"]) + INCOMPLETE_EXPIRY
    if status not in RENEWING:
        return None
    moments = [period_of(sub)[1]]
    if sub["cancel_at"] is not None:
        moments.append(int(sub["cancel_at"]))
    pause = sub["pause_collection"]
    if pause and pause["resumes_at"]:
        moments.append(int(pause["resumes_at"]))
    return min(moments)


def advance(state: State, sub: Obj) -> None:
    """Do what is due for `sub` at the pinned clock time (see `timeline`)."""
    now = state.now()
    if sub["status"] == "incomplete":
        _expire(state, sub)
        return
    pause = sub["pause_collection"]
    if pause and pause["resumes_at"] and pause["resumes_at"] <= now:
        before = snapshot(sub)
        sub["pause_collection"] = None
        state.emit_update("customer.subscription.updated", sub, before)
        return
    if sub["cancel_at"] is not None and sub["cancel_at"] <= now:
        cancel_now(state, sub)
        return
    renew(state, sub)


def _expire(state: State, sub: Obj) -> None:
    before = snapshot(sub)
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = state.now()
    for invoice in list_filter(state.all("invoice"), _subscription=sub["id"], status="open"):
        void(state, invoice)
    state.emit_update("customer.subscription.updated", sub, before)


def renew(state: State, sub: Obj) -> None:
    """Period end: start the next period and bill it (or end the trial, or pause)."""
    old_start, old_end = period_of(sub)
    before = snapshot(sub)
    ending = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    if sub["status"] == "trialing" and _payment_method(state, sub) is None:
        if ending == "cancel":
            cancel_now(state, sub)
            return
        if ending == "pause":
            sub["status"] = "paused"
            state.emit_update("customer.subscription.updated", sub, before)
            state.emit("customer.subscription.paused", sub)
            return
    _, new_end = _following_period(sub, _cadence(sub["items"]["data"][0]["price"]))
    if sub["status"] == "trialing":
        sub["status"] = "active"
        sub["billing_cycle_anchor"] = old_end
        sub["_period_index"] = 0
    else:
        sub["_period_index"] += 1
    _set_period(sub, old_end, new_end)
    invoice = _subscription_invoice(
        state,
        sub,
        "subscription_cycle",
        invoice_period=(old_start, old_end),
        line_period=(old_end, new_end),
    )
    state.emit_update("customer.subscription.updated", sub, before)
    pause = sub["pause_collection"]
    if pause is None:
        _bill(state, sub, invoice, off_session=True)
        return
    state.emit("invoice.created", invoice)
    if pause["behavior"] == "keep_as_draft":
        invoice["auto_advance"] = False
        return
    finalize(state, invoice)
    if invoice["status"] != "open":
        return
    if pause["behavior"] == "void":
        void(state, invoice)
    else:
        mark_uncollectible(state, invoice)
