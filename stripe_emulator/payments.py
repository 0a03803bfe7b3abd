"""Payment methods (Stripe's test cards), payment intents, charges and refunds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stripe_emulator.errors import StripeError, card_error, invalid, missing, no_such
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id, random_text
from stripe_emulator.objects import Obj, build, public
from stripe_emulator.routing import route
from stripe_emulator.state import (
    RequestInfo,
    State,
    created_filter,
    list_filter,
    newest_first,
    paginate,
    snapshot,
)

MINIMUM_AMOUNT = 50


@dataclass(frozen=True)
class TestCard:
    """What a Stripe test payment method does when charged."""

    brand: str
    last4: str
    outcome: str  # "succeeds" | "declines" | "authenticates"
    code: str = ""
    decline_code: str | None = None
    message: str = ""


_VISA = TestCard("visa", "4242", "succeeds")
_DECLINED = TestCard(
    "visa", "0002", "declines", "card_declined", "generic_decline", "Your card was declined."
)
_INSUFFICIENT = TestCard(
    "visa",
    "9995",
    "declines",
    "card_declined",
    "insufficient_funds",
    "Your card has insufficient funds.",
)
TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": _VISA,
    "pm_card_mastercard": TestCard("mastercard", "4444", "succeeds"),
    "pm_card_chargeDeclined": _DECLINED,
    "pm_card_visa_chargeDeclined": _DECLINED,
    "pm_card_insufficientFunds": _INSUFFICIENT,
    "pm_card_chargeDeclinedInsufficientFunds": _INSUFFICIENT,
    "pm_card_visa_chargeDeclinedInsufficientFunds": _INSUFFICIENT,
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa", "0069", "declines", "expired_card", "expired_card", "Your card has expired."
    ),
    "pm_card_authenticationRequired": TestCard("visa", "3184", "authenticates"),
}

_AUTH_REQUIRED = TestCard(
    "visa",
    "3184",
    "declines",
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)


# Called with (state, payment_intent) after every confirmation attempt; invoices use it
# to settle the invoice a payment intent belongs to, whichever path confirmed it.
PAYMENT_HOOKS: list[Callable[[State, Obj], None]] = []


def card_of(pm: Obj) -> TestCard:
    return TEST_CARDS[pm["_card"]]


def card_behaviour(state: State, pm_id: str) -> TestCard | None:
    """The behaviour of a test token or stored payment method (None if unknown)."""
    if pm_id in TEST_CARDS:
        return TEST_CARDS[pm_id]
    pm = state.objects.get("payment_method", {}).get(pm_id)
    return card_of(pm) if pm else None


# -- payment methods -------------------------------------------------------------------


def _new_payment_method(state: State, token: str) -> Obj:
    card = TEST_CARDS[token]
    pm = build(
        "payment_method",
        id=new_id("pm"),
        created=state.now(),
        customer=None,
        metadata={},
        type="card",
    )
    pm["card"].update(
        brand=card.brand,
        display_brand=card.brand,
        exp_month=12,
        exp_year=2034,
        fingerprint=random_text(16),
        generated_from=None,
        last4=card.last4,
        networks={"available": [card.brand], "preferred": None},
        wallet=None,
        regulated_status="unregulated",
    )
    pm["_card"] = token
    return state.add(pm)


def resolve_payment_method(state: State, pm_id: str, param: str = "payment_method") -> Obj:
    """A stored payment method, or a fresh one for a test token such as `pm_card_visa`."""
    if pm_id in TEST_CARDS:
        return _new_payment_method(state, pm_id)
    found = state.objects.get("payment_method", {}).get(pm_id)
    if found is None:
        raise no_such("PaymentMethod", pm_id, param)
    state.touch(found)
    return found


def attach(state: State, pm_id: str, customer: Obj, param: str = "payment_method") -> Obj:
    pm = resolve_payment_method(state, pm_id, param)
    if pm["customer"] == customer["id"]:
        return pm
    if pm["customer"] is not None:
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            param=param,
        )
    pm["customer"] = customer["id"]
    state.emit("payment_method.attached", pm)
    return pm


def customer_payment_method(state: State, customer: Obj, pm_id: str, param: str) -> Obj:
    """A payment method usable for `customer`: test tokens get attached on the fly."""
    if pm_id in TEST_CARDS:
        return attach(state, pm_id, customer, param)
    pm = resolve_payment_method(state, pm_id, param)
    if pm["customer"] != customer["id"]:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. "
            "The payment method must be attached to the customer.",
            param=param,
        )
    return pm


@route("GET", "/v1/payment_methods/{pm_id}")
def retrieve_payment_method(state: State, p: Params, pm_id: str) -> Obj:
    return resolve_payment_method(state, pm_id, "id")


@route("GET", "/v1/payment_methods")
def list_payment_methods(state: State, p: Params) -> Obj:
    items = list_filter(state.scan("payment_method"), customer=p.text("customer"))
    if p.text("customer") is None:
        raise missing("customer")
    return paginate(newest_first(items), p, "/v1/payment_methods")


@route("GET", "/v1/customers/{customer_id}/payment_methods")
def list_customer_payment_methods(state: State, p: Params, customer_id: str) -> Obj:
    state.get("customer", customer_id)
    items = list_filter(state.scan("payment_method"), customer=customer_id, type=p.text("type"))
    return paginate(newest_first(items), p, f"/v1/customers/{customer_id}/payment_methods")


@route("POST", "/v1/payment_methods/{pm_id}/attach")
def attach_payment_method(state: State, p: Params, pm_id: str) -> Obj:
    customer = state.get("customer", p.req_text("customer"), "customer")
    return attach(state, pm_id, customer, "payment_method")


@route("POST", "/v1/payment_methods/{pm_id}/detach")
def detach_payment_method(state: State, p: Params, pm_id: str) -> Obj:
    pm = resolve_payment_method(state, pm_id, "id")
    if pm["customer"] is None:
        raise invalid("The payment method you provided is not attached to a customer.")
    customer = state.find(pm["customer"])
    pm["customer"] = None
    if customer and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
    state.emit("payment_method.detached", pm)
    return pm


# -- charges and payment intents --------------------------------------------------------


def _new_charge(state: State, pi: Obj, pm: Obj, failure: TestCard | None) -> Obj:
    card = card_of(pm)
    charge = build(
        "charge",
        id=new_id("ch"),
        amount=pi["amount"],
        amount_captured=0 if failure else pi["amount"],
        amount_refunded=0,
        captured=failure is None,
        created=state.now(),
        currency=pi["currency"],
        customer=pi["customer"],
        description=pi["description"],
        failure_code=failure.code if failure else None,
        failure_message=failure.message if failure else None,
        metadata=dict(pi["metadata"]),
        outcome={
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network" if failure else "approved_by_network",
            "reason": failure.decline_code if failure else None,
            "risk_level": "normal",
            "seller_message": (
                "The bank did not return any further details with this decline."
                if failure
                else "Payment complete."
            ),
            "type": "issuer_declined" if failure else "authorized",
        },
        paid=failure is None,
        payment_intent=pi["id"],
        payment_method=pm["id"],
        receipt_email=None,
        receipt_url=f"{state.base_url}/receipts/{pi['id']}",
        refunded=False,
        status="failed" if failure else "succeeded",
    )
    charge["refunds"]["url"] = f"/v1/charges/{charge['id']}/refunds"
    details = charge["payment_method_details"]["card"]
    details.update(
        amount_authorized=None if failure else pi["amount"],
        brand=card.brand,
        last4=card.last4,
        exp_month=12,
        exp_year=2034,
        fingerprint=pm["card"]["fingerprint"],
        network=card.brand,
        wallet=None,
    )
    details["overcapture"]["maximum_amount_capturable"] = pi["amount"]
    return state.add(charge)


def _decline(state: State, pi: Obj, pm: Obj, card: TestCard) -> StripeError:
    charge = _new_charge(state, pi, pm, card)
    pi.update(
        status="requires_payment_method",
        latest_charge=charge["id"],
        next_action=None,
        last_payment_error={
            "charge": charge["id"],
            "code": card.code,
            "decline_code": card.decline_code,
            "doc_url": f"https://stripe.com/docs/error-codes/{card.code.replace('_', '-')}",
            "message": card.message,
            "payment_method": public(pm),
            "type": "card_error",
        },
    )
    state.emit("charge.failed", charge)
    state.emit("payment_intent.payment_failed", pi)
    return card_error(
        card.message,
        card.code,
        decline_code=card.decline_code,
        extra={
            "charge": charge["id"],
            "payment_intent": public(pi),
            "payment_method": public(pm),
        },
    )


def confirm(state: State, pi: Obj, pm: Obj, *, off_session: bool) -> StripeError | None:
    """Charge `pm` for `pi`: success, a 3DS challenge, or the card error to answer with."""
    error = _attempt(state, pi, pm, off_session=off_session)
    for hook in PAYMENT_HOOKS:
        hook(state, pi)
    return error


def _attempt(state: State, pi: Obj, pm: Obj, *, off_session: bool) -> StripeError | None:
    card = card_of(pm)
    pi["payment_method"] = pm["id"]
    pi["last_payment_error"] = None
    if card.outcome == "authenticates" and not pi.get("_authenticated"):
        if off_session:
            # Off-session, nobody can authenticate: Stripe declines the attempt.
            return _decline(state, pi, pm, _AUTH_REQUIRED)
        pi.update(
            status="requires_action",
            next_action={
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "stripe_js": f"{state.base_url}/authenticate/{pi['id']}",
                    "source": "src_emulator",
                },
            },
        )
        state.emit("payment_intent.requires_action", pi)
        return None
    if card.outcome == "declines":
        return _decline(state, pi, pm, card)
    charge = _new_charge(state, pi, pm, None)
    pi.update(
        status="succeeded",
        amount_received=pi["amount"],
        latest_charge=charge["id"],
        next_action=None,
    )
    state.emit("charge.succeeded", charge)
    state.emit("payment_intent.succeeded", pi)
    return None


def create_intent(
    state: State,
    *,
    amount: int,
    currency: str,
    customer: str | None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    payment_method: str | None = None,
) -> Obj:
    pi_id = new_id("pi")
    pi = build(
        "payment_intent",
        id=pi_id,
        amount=amount,
        amount_received=0,
        client_secret=f"{pi_id}_secret_{random_text(25)}",
        created=state.now(),
        currency=currency,
        customer=customer,
        description=description,
        latest_charge=None,
        metadata=dict(metadata or {}),
        payment_method=payment_method,
        payment_method_options={},
        status="requires_confirmation" if payment_method else "requires_payment_method",
    )
    state.add(pi)
    state.emit("payment_intent.created", pi)
    return pi


def _payment_method_for(state: State, p: Params, customer: Obj | None) -> Obj | None:
    pm_id = p.text("payment_method")
    if pm_id is None:
        return None
    if customer is None:
        return resolve_payment_method(state, pm_id)
    pm = resolve_payment_method(state, pm_id)
    if pm["customer"] not in (None, customer["id"]):
        raise invalid(
            f"The provided PaymentMethod {pm_id} belongs to another customer.",
            param="payment_method",
        )
    return pm


def _confirm_or_raise(state: State, pi: Obj, pm: Obj | None, off_session: bool) -> None:
    if pm is None:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            param="payment_method",
            code="payment_intent_unexpected_state",
        )
    error = confirm(state, pi, pm, off_session=off_session)
    if error is not None:
        raise error


@route("POST", "/v1/payment_intents")
def create_payment_intent(state: State, p: Params) -> Obj:
    amount = p.req_integer("amount")
    currency = p.req_text("currency").lower()
    if amount < MINIMUM_AMOUNT:
        raise invalid(
            f"Amount must be at least {MINIMUM_AMOUNT} cents",
            param="amount",
            code="amount_too_small",
        )
    customer_id = p.text("customer")
    customer = state.get("customer", customer_id, "customer") if customer_id else None
    off_session = p.flag("off_session")
    do_confirm = p.flag("confirm")
    if off_session and not do_confirm:
        raise invalid("off_session can only be used with confirm=true.", param="off_session")
    pm = _payment_method_for(state, p, customer)
    pi = create_intent(
        state,
        amount=amount,
        currency=currency,
        customer=customer_id,
        description=p.text("description"),
        metadata=p.metadata(),
        payment_method=pm["id"] if pm else None,
    )
    pi["setup_future_usage"] = p.text("setup_future_usage")
    pi["receipt_email"] = p.text("receipt_email")
    if do_confirm:
        _confirm_or_raise(state, pi, pm, off_session)
    return pi


@route("GET", "/v1/payment_intents/{pi_id}")
def retrieve_payment_intent(state: State, p: Params, pi_id: str) -> Obj:
    return state.get("payment_intent", pi_id)


@route("GET", "/v1/payment_intents")
def list_payment_intents(state: State, p: Params) -> Obj:
    items = list_filter(state.scan("payment_intent"), customer=p.text("customer"))
    return paginate(newest_first(created_filter(items, p)), p, "/v1/payment_intents")


@route("POST", "/v1/payment_intents/{pi_id}")
def update_payment_intent(state: State, p: Params, pi_id: str) -> Obj:
    pi = state.get("payment_intent", pi_id)
    apply_metadata(pi["metadata"], p.metadata())
    if p.has("description"):
        pi["description"] = p.text("description")
    if p.has("amount"):
        if pi["status"] in ("succeeded", "canceled", "processing"):
            raise invalid(
                f"This PaymentIntent's amount could not be updated because it has a status of "
                f"{pi['status']}.",
                param="amount",
                code="payment_intent_unexpected_state",
            )
        pi["amount"] = p.req_integer("amount")
    # Stripe has no `payment_intent.updated` event: an update announces nothing.
    return pi


@route("POST", "/v1/payment_intents/{pi_id}/confirm")
def confirm_payment_intent(state: State, p: Params, pi_id: str) -> Obj:
    pi = state.get("payment_intent", pi_id)
    if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise invalid(
            f"This PaymentIntent's status is {pi['status']} and cannot be confirmed.",
            code="payment_intent_unexpected_state",
        )
    customer = state.find(pi["customer"]) if pi["customer"] else None
    pm = _payment_method_for(state, p, customer)
    if pm is None and pi["payment_method"]:
        pm = state.get("payment_method", pi["payment_method"], "payment_method")
    _confirm_or_raise(state, pi, pm, p.flag("off_session"))
    return pi


@route("POST", "/v1/payment_intents/{pi_id}/cancel")
def cancel_payment_intent(state: State, p: Params, pi_id: str) -> Obj:
    pi = state.get("payment_intent", pi_id)
    if pi["status"] in ("succeeded", "canceled"):
        raise invalid(
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
            code="payment_intent_unexpected_state",
        )
    pi.update(
        status="canceled",
        canceled_at=state.now(),
        cancellation_reason=p.text("cancellation_reason"),
        next_action=None,
    )
    state.emit("payment_intent.canceled", pi)
    return pi


@route("POST", "/v1/test_helpers/payment_intents/{pi_id}/authenticate")
def authenticate_payment_intent(state: State, p: Params, pi_id: str) -> Obj:
    """Emulator helper: the customer passes (or fails) the 3DS challenge of `pi`."""
    pi = state.get("payment_intent", pi_id)
    if pi["status"] != "requires_action":
        raise invalid(f"This PaymentIntent's status is {pi['status']}, not requires_action.")
    state.request = RequestInfo()  # the customer acts, not an API call: `request` is null
    authenticate(
        state, pi, passed=p.choice("outcome", ("succeeded", "failed"), "succeeded") == "succeeded"
    )
    return pi


def authenticate(state: State, pi: Obj, *, passed: bool) -> None:
    """The customer completes (or fails) the 3DS challenge of a `requires_action` intent."""
    pm = state.get("payment_method", pi["payment_method"], "payment_method")
    if passed:
        pi["_authenticated"] = True
        confirm(state, pi, pm, off_session=False)
        return
    _decline(state, pi, pm, _AUTH_REQUIRED)
    for hook in PAYMENT_HOOKS:
        hook(state, pi)


@route("GET", "/v1/charges/{charge_id}")
def retrieve_charge(state: State, p: Params, charge_id: str) -> Obj:
    return state.get("charge", charge_id)


@route("GET", "/v1/charges")
def list_charges(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("charge"),
        customer=p.text("customer"),
        payment_intent=p.text("payment_intent"),
    )
    return paginate(newest_first(items), p, "/v1/charges")


# -- refunds ----------------------------------------------------------------------------


def refundable(charge: Obj) -> int:
    return int(charge["amount_captured"]) - int(charge["amount_refunded"])


def succeeded_charge(state: State, pi: Obj, param: str = "payment_intent") -> Obj:
    if pi["status"] != "succeeded" or not pi["latest_charge"]:
        raise invalid(
            f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
            param=param,
            code="charge_not_refundable",
        )
    return state.get("charge", pi["latest_charge"], param)


def refund_charge(
    state: State,
    charge: Obj,
    amount: int | None,
    *,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    remaining = refundable(charge)
    if remaining <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.",
            code="charge_already_refunded",
        )
    amount = remaining if amount is None else amount
    if amount <= 0:
        raise invalid("Invalid positive integer", param="amount")
    if amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            param="amount",
            code="amount_too_large",
        )
    refund = build(
        "refund",
        id=new_id("re"),
        amount=amount,
        charge=charge["id"],
        created=state.now(),
        currency=charge["currency"],
        customer=charge["customer"],
        metadata=dict(metadata or {}),
        payment_intent=charge["payment_intent"],
        payment_method=charge["payment_method"],
        reason=reason,
        status="succeeded",
    )
    state.add(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    charge["refunds"]["data"].insert(0, public(refund))
    state.emit("refund.created", refund)
    state.emit("charge.refunded", charge)
    return refund


@route("POST", "/v1/refunds")
def create_refund(state: State, p: Params) -> Obj:
    pi_id = p.text("payment_intent")
    charge_id = p.text("charge")
    if pi_id:
        charge = succeeded_charge(state, state.get("payment_intent", pi_id, "payment_intent"))
    elif charge_id:
        charge = state.get("charge", charge_id, "charge")
        if charge["status"] != "succeeded":
            raise invalid(f"Charge {charge_id} did not succeed.", param="charge")
    else:
        raise invalid(
            "One of the following params should be provided for this request: "
            "payment_intent or charge."
        )
    reason = p.choice("reason", ("duplicate", "fraudulent", "requested_by_customer"))
    return refund_charge(state, charge, p.integer("amount"), reason=reason, metadata=p.metadata())


@route("GET", "/v1/refunds/{refund_id}")
def retrieve_refund(state: State, p: Params, refund_id: str) -> Obj:
    return state.get("refund", refund_id)


@route("POST", "/v1/refunds/{refund_id}")
def update_refund(state: State, p: Params, refund_id: str) -> Obj:
    refund = state.get("refund", refund_id)
    before = snapshot(refund)
    apply_metadata(refund["metadata"], p.metadata())
    state.emit_update("refund.updated", refund, before)
    return refund


@route("GET", "/v1/refunds")
def list_refunds(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("refund"), charge=p.text("charge"), payment_intent=p.text("payment_intent")
    )
    return paginate(newest_first(created_filter(items, p)), p, "/v1/refunds")
