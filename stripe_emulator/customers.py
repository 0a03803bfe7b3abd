"""Customers, their balance (credit) ledger, search, and billing portal sessions."""

from __future__ import annotations

import re

from stripe_emulator.errors import invalid
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import invoice_prefix, new_id
from stripe_emulator.objects import Obj, build, public
from stripe_emulator.payments import attach, customer_payment_method
from stripe_emulator.routing import route
from stripe_emulator.state import State, list_filter, newest_first, paginate, snapshot


def ensure_currency(customer: Obj, currency: str) -> None:
    """A customer bills in one currency, fixed by its first invoice or balance change."""
    if customer["currency"] is None:
        customer["currency"] = currency
    elif customer["currency"] != currency:
        raise invalid(
            f"You cannot combine currencies on a single customer. This customer has had a "
            f"subscription or payment in {customer['currency']}, but you are trying to use "
            f"{currency}."
        )


def default_payment_method(customer: Obj) -> str | None:
    pm: str | None = customer["invoice_settings"]["default_payment_method"]
    return pm


def _set_default_payment_method(state: State, customer: Obj, pm_id: str) -> None:
    param = "invoice_settings[default_payment_method]"
    pm = customer_payment_method(state, customer, pm_id, param)
    customer["invoice_settings"]["default_payment_method"] = pm["id"]


@route("POST", "/v1/customers")
def create_customer(state: State, p: Params) -> Obj:
    customer = build(
        "customer",
        id=new_id("cus"),
        created=state.now(),
        description=p.text("description"),
        email=p.text("email"),
        invoice_prefix=invoice_prefix(),
        metadata={},
        name=p.text("name"),
        phone=p.text("phone"),
        preferred_locales=p.texts("preferred_locales"),
    )
    apply_metadata(customer["metadata"], p.metadata())
    state.add(customer)
    state.emit("customer.created", customer)
    pm_id = p.text("payment_method")
    attached = attach(state, pm_id, customer) if pm_id else None
    default_pm = p.sub("invoice_settings").text("default_payment_method")
    if default_pm:
        before = snapshot(customer)
        if attached is not None and default_pm == pm_id:
            # `payment_method=pm_card_visa` with the same default names the attached copy.
            customer["invoice_settings"]["default_payment_method"] = attached["id"]
        else:
            _set_default_payment_method(state, customer, default_pm)
        state.emit_update("customer.updated", customer, before)
    return customer


@route("GET", "/v1/customers/search")
def search_customers(state: State, p: Params) -> Obj:
    matches = _search(state.scan("customer"), p.req_text("query"))
    limit = p.integer("limit", 10) or 10
    data = [public(c) for c in newest_first(matches)[:limit]]
    return {
        "object": "search_result",
        "data": data,
        "has_more": len(matches) > limit,
        "next_page": None,
        "url": "/v1/customers/search",
    }


_CLAUSE = re.compile(
    r"""^\s*(?P<field>metadata\[['"](?P<key>[^'"]+)['"]\]|\w+)\s*(?P<op>[:~])\s*['"](?P<value>.*)['"]\s*$"""
)


def _search(customers: list[Obj], query: str) -> list[Obj]:
    """Stripe search for `field:'v'`, `field~'v'` and `metadata['k']:'v'` clauses joined by AND."""
    clauses = []
    for text in re.split(r"\s+AND\s+", query.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(text)
        if not found:
            raise invalid(f"Unsupported search query clause: {text!r}", param="query")
        clauses.append(found)

    def value_of(customer: Obj, clause: re.Match[str]) -> str:
        if clause["key"] is not None:
            return str(customer["metadata"].get(clause["key"], ""))
        return str(customer.get(clause["field"]) or "")

    def matches(customer: Obj) -> bool:
        for clause in clauses:
            actual = value_of(customer, clause)
            wanted = clause["value"]
            if clause["op"] == ":" and actual != wanted:
                return False
            if clause["op"] == "~" and wanted.lower() not in actual.lower():
                return False
        return True

    return [c for c in customers if matches(c)]


@route("GET", "/v1/customers/{customer_id}")
def retrieve_customer(state: State, p: Params, customer_id: str) -> Obj:
    return state.get("customer", customer_id)


@route("POST", "/v1/customers/{customer_id}")
def update_customer(state: State, p: Params, customer_id: str) -> Obj:
    customer = state.get("customer", customer_id)
    before = snapshot(customer)
    for field in ("email", "name", "description", "phone"):
        if p.has(field):
            customer[field] = p.text(field)
    apply_metadata(customer["metadata"], p.metadata())
    settings = p.sub("invoice_settings")
    if settings.has("default_payment_method"):
        pm_id = settings.text("default_payment_method")
        if pm_id is None:
            customer["invoice_settings"]["default_payment_method"] = None
        else:
            _set_default_payment_method(state, customer, pm_id)
    state.emit_update("customer.updated", customer, before)
    return customer


@route("GET", "/v1/customers")
def list_customers(state: State, p: Params) -> Obj:
    items = list_filter(state.scan("customer"), email=p.text("email"))
    return paginate(newest_first(items), p, "/v1/customers")


# -- balance ----------------------------------------------------------------------------


def adjust_balance(
    state: State,
    customer: Obj,
    amount: int,
    type_: str,
    currency: str,
    *,
    credit_note: str | None = None,
    invoice: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    """Add `amount` to the customer balance (negative = credit owed to the customer)."""
    ensure_currency(customer, currency)
    before = snapshot(customer)
    customer["balance"] += amount
    txn = build(
        "customer_balance_transaction",
        id=new_id("cbtxn"),
        amount=amount,
        created=state.now(),
        credit_note=credit_note,
        currency=customer["currency"],
        customer=customer["id"],
        description=description,
        ending_balance=customer["balance"],
        invoice=invoice,
        metadata=dict(metadata or {}),
        type=type_,
    )
    state.add(txn)
    state.emit_update("customer.updated", customer, before)
    return txn


def _balance_transaction(state: State, customer_id: str, txn_id: str) -> Obj:
    txn = state.get("customer_balance_transaction", txn_id)
    if txn["customer"] != customer_id:
        raise invalid(f"No such customer balance transaction: '{txn_id}'")
    return txn


@route("POST", "/v1/customers/{customer_id}/balance_transactions")
def create_balance_transaction(state: State, p: Params, customer_id: str) -> Obj:
    customer = state.get("customer", customer_id)
    amount = p.req_integer("amount")
    if amount == 0:
        raise invalid("Amount must be non-zero.", param="amount")
    return adjust_balance(
        state,
        customer,
        amount,
        "adjustment",
        p.req_text("currency").lower(),
        description=p.text("description"),
        metadata=p.metadata(),
    )


@route("GET", "/v1/customers/{customer_id}/balance_transactions")
def list_balance_transactions(state: State, p: Params, customer_id: str) -> Obj:
    state.get("customer", customer_id)
    items = list_filter(state.scan("customer_balance_transaction"), customer=customer_id)
    return paginate(newest_first(items), p, f"/v1/customers/{customer_id}/balance_transactions")


@route("GET", "/v1/customers/{customer_id}/balance_transactions/{txn_id}")
def retrieve_balance_transaction(state: State, p: Params, customer_id: str, txn_id: str) -> Obj:
    return _balance_transaction(state, customer_id, txn_id)


@route("POST", "/v1/customers/{customer_id}/balance_transactions/{txn_id}")
def update_balance_transaction(state: State, p: Params, customer_id: str, txn_id: str) -> Obj:
    txn = _balance_transaction(state, customer_id, txn_id)
    if p.has("description"):
        txn["description"] = p.text("description")
    if txn["metadata"] is None:
        txn["metadata"] = {}
    apply_metadata(txn["metadata"], p.metadata())
    return txn


# -- billing portal ----------------------------------------------------------------------


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(state: State, p: Params) -> Obj:
    customer = state.get("customer", p.req_text("customer"), "customer")
    session_id = new_id("bps")
    session = build(
        "billing_portal.session",
        id=session_id,
        created=state.now(),
        customer=customer["id"],
        locale=p.text("locale"),
        return_url=p.text("return_url"),
        url=f"{state.base_url}/p/session/{session_id}",
    )
    return state.add(session)
