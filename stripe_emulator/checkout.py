"""Checkout Sessions, and completing one as the customer would (test helper and hosted page)."""

from __future__ import annotations

from stripe_emulator.catalog import new_price
from stripe_emulator.errors import invalid, missing, no_such
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import invoice_prefix, new_id
from stripe_emulator.objects import Obj, build
from stripe_emulator.payments import (
    attach,
    card_behaviour,
    confirm,
    create_intent,
    resolve_payment_method,
)
from stripe_emulator.proration import ItemState
from stripe_emulator.routing import route
from stripe_emulator.state import (
    RequestInfo,
    State,
    list_filter,
    newest_first,
    paginate,
    snapshot,
)
from stripe_emulator.subscriptions import NewSubscription, start_subscription

EXPIRY = 24 * 3600
OUTCOME_CARDS = {"paid": "pm_card_visa", "declined": "pm_card_chargeDeclined"}


def _line_price(state: State, lp: Params, mode: str) -> Obj:
    if lp.has("price_data"):
        price = new_price(state, lp.sub("price_data"))
        price["active"] = False
    else:
        price = state.get("price", lp.req_text("price"), lp.name("price"))
        if not price["active"]:
            raise invalid("The price specified is inactive.", param=lp.name("price"))
    recurring = price["recurring"] is not None
    if mode == "subscription" and not recurring:
        raise invalid(
            "You must specify at least one recurring price in `subscription` mode when using "
            "prices.",
            param=lp.name("price"),
        )
    if mode == "payment" and recurring:
        raise invalid(
            "You specified `payment` mode but passed a recurring price. Either switch to "
            "`subscription` mode or use only one-time prices.",
            param=lp.name("price"),
        )
    return price


def _line_item(state: State, price: Obj, quantity: int) -> Obj:
    amount = int(price["unit_amount"]) * quantity
    return build(
        "item",
        id=new_id("li"),
        amount_discount=0,
        amount_subtotal=amount,
        amount_tax=0,
        amount_total=amount,
        currency=price["currency"],
        description=state.get("product", price["product"])["name"],
        metadata={},
        price=dict(price),
        quantity=quantity,
    )


@route("POST", "/v1/checkout/sessions")
def create_session(state: State, p: Params) -> Obj:
    mode = p.choice("mode", ("payment", "subscription"))
    if mode is None:
        raise missing("mode")
    customer_id = p.text("customer")
    if customer_id:
        state.get("customer", customer_id, "customer")
    lines = p.subs("line_items")
    if not lines:
        raise missing("line_items")
    items = []
    for lp in lines:
        quantity = lp.integer("quantity", 1) or 1
        items.append(_line_item(state, _line_price(state, lp, mode), quantity))
    currencies = {i["currency"] for i in items}
    if len(currencies) > 1:
        raise invalid("All line items must have the same currency.", param="line_items")
    now = state.now()
    session_id = new_id("cs_test")
    total = sum(int(i["amount_total"]) for i in items)
    session = build(
        "checkout.session",
        id=session_id,
        amount_subtotal=total,
        amount_total=total,
        cancel_url=p.text("cancel_url"),
        client_reference_id=p.text("client_reference_id"),
        created=now,
        currency=currencies.pop(),
        customer=customer_id,
        customer_creation=None
        if customer_id
        else ("always" if mode == "subscription" else "if_required"),
        customer_email=p.text("customer_email"),
        expires_at=p.integer("expires_at", now + EXPIRY),
        invoice=None,
        invoice_creation=(
            {
                "enabled": False,
                "invoice_data": {
                    "account_tax_ids": None,
                    "custom_fields": None,
                    "description": None,
                    "footer": None,
                    "issuer": None,
                    "metadata": {},
                    "rendering_options": None,
                },
            }
            if mode == "payment"
            else None
        ),
        locale=p.text("locale"),
        metadata={},
        mode=mode,
        payment_method_collection="always" if mode == "subscription" else None,
        payment_method_options={},
        payment_method_types=["card"],
        payment_status="unpaid",
        shipping_options=[],
        status="open",
        subscription=None,
        success_url=p.text("success_url"),
        url=f"{state.base_url}/c/pay/{session_id}",
    )
    apply_metadata(session["metadata"], p.metadata())
    subscription_data = p.sub("subscription_data")
    intent_data = p.sub("payment_intent_data")
    session["_line_items"] = items
    session["_subscription_metadata"] = subscription_data.metadata() or {}
    session["_subscription_description"] = subscription_data.text("description")
    session["_intent_metadata"] = intent_data.metadata() or {}
    session["_intent_description"] = intent_data.text("description")
    session["_setup_future_usage"] = intent_data.choice(
        "setup_future_usage", ("on_session", "off_session")
    )
    return state.add(session)


@route("GET", "/v1/checkout/sessions/{session_id}")
def retrieve_session(state: State, p: Params, session_id: str) -> Obj:
    return state.get("checkout.session", session_id)


@route("GET", "/v1/checkout/sessions/{session_id}/line_items")
def list_session_line_items(state: State, p: Params, session_id: str) -> Obj:
    session = state.get("checkout.session", session_id)
    return paginate(session["_line_items"], p, f"/v1/checkout/sessions/{session_id}/line_items")


@route("GET", "/v1/checkout/sessions")
def list_sessions(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("checkout.session"),
        customer=p.text("customer"),
        payment_intent=p.text("payment_intent"),
        subscription=p.text("subscription"),
        status=p.text("status"),
    )
    return paginate(newest_first(items), p, "/v1/checkout/sessions")


def expire(state: State, session: Obj) -> None:
    if session["status"] != "open":
        raise invalid(
            f"Only Checkout Sessions with a status of `open` can be expired; this one is "
            f"`{session['status']}`."
        )
    before = snapshot(session)
    session["status"] = "expired"
    session["url"] = None
    state.emit("checkout.session.expired", session, {"status": before["status"]})


@route("POST", "/v1/checkout/sessions/{session_id}/expire")
def expire_session(state: State, p: Params, session_id: str) -> Obj:
    session = state.get("checkout.session", session_id)
    expire(state, session)
    return session


@route("POST", "/v1/test_helpers/checkout/sessions/{session_id}/complete")
def complete_session(state: State, p: Params, session_id: str) -> Obj:
    """Emulator helper: the customer pays (`outcome=paid`) or their card is declined."""
    session = state.get("checkout.session", session_id)
    outcome = p.choice("outcome", tuple(OUTCOME_CARDS), "paid") or "paid"
    state.request = RequestInfo()  # the customer acts, not an API call: `request` is null
    complete(state, session, p.text("payment_method") or OUTCOME_CARDS[outcome])
    return session


def complete(state: State, session: Obj, card: str) -> None:
    """Pay `session` with test card `card`; a decline leaves it open and unpaid."""
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is no longer open (status: {session['status']}).",
        )
    if session["mode"] == "subscription":
        _complete_subscription(state, session, card)
    else:
        _complete_payment(state, session, card)


def _customer_for(state: State, session: Obj) -> Obj:
    if session["customer"]:
        return state.get("customer", session["customer"])
    customer = build(
        "customer",
        id=new_id("cus"),
        created=state.now(),
        email=session["customer_email"] or "customer@example.test",
        invoice_prefix=invoice_prefix(),
        metadata={},
        preferred_locales=[],
    )
    state.add(customer)
    state.emit("customer.created", customer)
    session["customer"] = customer["id"]
    return customer


def _details(customer: Obj | None, session: Obj) -> Obj:
    return {
        "address": None,
        "business_name": None,
        "email": (customer or {}).get("email") or session["customer_email"],
        "individual_name": None,
        "name": (customer or {}).get("name"),
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def _complete_subscription(state: State, session: Obj, card: str) -> None:
    behaviour = card_behaviour(state, card)
    if behaviour is None:
        raise no_such("PaymentMethod", card, "payment_method")
    if behaviour.outcome != "succeeds":
        # Checkout shows the decline to the customer; no subscription is created.
        return
    customer = _customer_for(state, session)
    # Stripe attaches the card and makes it the *subscription's* default payment method;
    # the customer's `invoice_settings.default_payment_method` stays as it was.
    pm = attach(state, card, customer)
    items = [
        ItemState(new_id("si"), item["price"], int(item["quantity"]), {})
        for item in session["_line_items"]
    ]
    sub = start_subscription(
        state,
        NewSubscription(
            customer=customer,
            items=items,
            default_payment_method=pm["id"],
            metadata=session["_subscription_metadata"],
            description=session["_subscription_description"],
        ),
    )
    session.update(
        customer_details=_details(customer, session),
        invoice=sub["latest_invoice"],
        payment_status="paid",
        status="complete",
        subscription=sub["id"],
        url=None,
    )
    state.emit("checkout.session.completed", session)


def _complete_payment(state: State, session: Obj, card: str) -> None:
    pm = resolve_payment_method(state, card)
    customer = state.find(session["customer"]) if session["customer"] else None
    pi = state.find(session["payment_intent"]) if session["payment_intent"] else None
    if pi is None:
        pi = create_intent(
            state,
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            description=session["_intent_description"],
            metadata=session["_intent_metadata"],
        )
        pi["setup_future_usage"] = session["_setup_future_usage"]
        session["payment_intent"] = pi["id"]
    confirm(state, pi, pm, off_session=False)
    if pi["status"] != "succeeded":
        return
    if customer is not None and pi["setup_future_usage"]:
        # Only with `setup_future_usage` does a payment-mode Checkout keep the card: it is
        # attached to the customer (not made a default) for later off-session charges.
        attach(state, pm["id"], customer)
    session.update(
        customer_details=_details(customer, session),
        payment_status="paid",
        status="complete",
        url=None,
    )
    state.emit("checkout.session.completed", session)
