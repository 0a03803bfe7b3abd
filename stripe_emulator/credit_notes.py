"""Credit notes on open or paid invoices: lower the amount due, credit the balance, or refund."""

from __future__ import annotations

from dataclasses import dataclass, field

from stripe_emulator.customers import adjust_balance
from stripe_emulator.errors import invalid, missing
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id
from stripe_emulator.invoices import mark_paid, refresh_totals
from stripe_emulator.objects import Obj, build, list_object
from stripe_emulator.payments import refund_charge, refundable
from stripe_emulator.routing import route
from stripe_emulator.state import (
    State,
    created_filter,
    list_filter,
    newest_first,
    paginate,
    snapshot,
)

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
_REFUND_REASONS = {"duplicate": "duplicate", "fraudulent": "fraudulent"}


@dataclass
class CreditPlan:
    """A validated credit note request, before anything is changed."""

    invoice: Obj
    amount: int
    lines: list[Obj] = field(default_factory=list)
    credit_amount: int = 0
    refund_amount: int = 0
    out_of_band_amount: int = 0
    charge: Obj | None = None

    @property
    def pre_payment(self) -> bool:
        return bool(self.invoice["status"] == "open")


def creditable(invoice: Obj) -> int:
    """What can still be credited: the open amount, or the paid total not yet credited."""
    if invoice["status"] == "open":
        return int(invoice["amount_remaining"])
    credited = (
        invoice["pre_payment_credit_notes_amount"] + invoice["post_payment_credit_notes_amount"]
    )
    return int(invoice["total"]) - int(credited)


def _line(state: State, invoice: Obj, lp: Params) -> Obj:
    kind = lp.choice("type", ("invoice_line_item", "custom_line_item"))
    if kind is None:
        raise missing(lp.name("type"))
    if kind == "custom_line_item":
        quantity = lp.integer("quantity", 1) or 1
        unit = lp.req_integer("unit_amount")
        amount = unit * quantity
        description = lp.req_text("description")
        invoice_line = None
    else:
        line_id = lp.req_text("invoice_line_item")
        found = [line for line in invoice["lines"]["data"] if line["id"] == line_id]
        if not found:
            raise invalid(
                f"Invoice line item {line_id} is not on invoice {invoice['id']}.",
                param=lp.name("invoice_line_item"),
            )
        invoice_line = found[0]
        quantity = lp.integer("quantity", invoice_line["quantity"]) or 1
        unit = int(invoice_line["amount"]) // max(int(invoice_line["quantity"]), 1)
        amount = lp.integer("amount", unit * quantity) or 0
        description = lp.text("description") or invoice_line["description"]
    if amount <= 0:
        raise invalid("Credit note line amounts must be positive.", param=lp.name("amount"))
    line = build(
        "credit_note_line_item",
        id=new_id("cnli"),
        amount=amount,
        description=description,
        quantity=quantity,
        type=kind,
        unit_amount=unit if kind == "custom_line_item" else None,
        unit_amount_decimal=str(unit) if kind == "custom_line_item" else None,
        metadata={},
    )
    if invoice_line is not None:
        line["invoice_line_item"] = invoice_line["id"]
    else:
        del line["invoice_line_item"]  # a custom line has none: Stripe omits the key
    return line


def plan_credit_note(state: State, p: Params) -> CreditPlan:
    invoice = state.get("invoice", p.req_text("invoice"), "invoice")
    if invoice["status"] not in ("open", "paid"):
        raise invalid(
            f"Credit notes can only be issued on open or paid invoices; {invoice['id']} is "
            f"{invoice['status']}.",
            param="invoice",
        )
    lines = [_line(state, invoice, lp) for lp in p.subs("lines")]
    credit = p.integer("credit_amount", 0) or 0
    refund = p.integer("refund_amount", 0) or 0
    out_of_band = p.integer("out_of_band_amount", 0) or 0
    if min(credit, refund, out_of_band) < 0:
        raise invalid("Credit note amounts must not be negative.")
    amount = p.integer("amount")
    if lines:
        total = sum(int(line["amount"]) for line in lines)
        if amount is not None and amount != total:
            raise invalid(
                f"The amount ({amount}) must equal the sum of the lines ({total}).", param="amount"
            )
        amount = total
    if amount is None:
        amount = credit + refund + out_of_band
        if amount == 0:
            raise missing("amount")
    if amount <= 0:
        raise invalid("The credit note amount must be positive.", param="amount")
    if not lines:
        line = build(
            "credit_note_line_item",
            id=new_id("cnli"),
            amount=amount,
            description=p.text("memo") or "Credit",
            quantity=1,
            type="custom_line_item",
            unit_amount=amount,
            unit_amount_decimal=str(amount),
            metadata={},
        )
        del line["invoice_line_item"]
        lines = [line]
    limit = creditable(invoice)
    if amount > limit:
        raise invalid(
            f"The credit note amount ({amount}) exceeds the amount that can still be credited on "
            f"invoice {invoice['id']} ({limit}).",
            param="amount",
        )
    plan = CreditPlan(invoice, amount, lines)
    if plan.pre_payment:
        if refund:
            raise invalid("refund_amount can only be used on paid invoices.", param="refund_amount")
        return plan
    if credit + refund + out_of_band == 0:
        credit = amount  # nothing allocated: the customer's balance gets it
    if credit + refund + out_of_band != amount:
        raise invalid(
            f"The sum of credit_amount, refund_amount and out_of_band_amount "
            f"({credit + refund + out_of_band}) must equal the credit note amount ({amount}).",
        )
    if refund:
        pi_id = invoice["_payment_intent"]
        pi = state.find(pi_id) if pi_id else None
        charge = state.find(pi["latest_charge"]) if pi and pi["latest_charge"] else None
        available = refundable(charge) if charge and charge["status"] == "succeeded" else 0
        if refund > available:
            raise invalid(
                f"refund_amount ({refund}) is greater than the refundable amount of the invoice's "
                f"payment ({available}).",
                param="refund_amount",
            )
        plan.charge = charge
    plan.credit_amount, plan.refund_amount, plan.out_of_band_amount = credit, refund, out_of_band
    return plan


def _credit_note(state: State, plan: CreditPlan, p: Params) -> Obj:
    invoice = plan.invoice
    count = len(list_filter(state.scan("credit_note"), invoice=invoice["id"]))
    note_id = new_id("cn")
    note = build(
        "credit_note",
        id=note_id,
        amount=plan.amount,
        created=state.now(),
        currency=invoice["currency"],
        customer=invoice["customer"],
        customer_balance_transaction=None,
        discount_amount=0,
        discount_amounts=[],
        effective_at=p.integer("effective_at", state.now()),
        invoice=invoice["id"],
        lines=list_object(plan.lines, f"/v1/credit_notes/{note_id}/lines"),
        memo=p.text("memo"),
        metadata={},
        number=f"{invoice['number']}-CN-{count + 1:02d}",
        out_of_band_amount=plan.out_of_band_amount or None,
        pdf=f"{state.base_url}/cn/{note_id}/pdf",
        post_payment_amount=0 if plan.pre_payment else plan.amount,
        pre_payment_amount=plan.amount if plan.pre_payment else 0,
        reason=p.choice("reason", REASONS),
        refunds=[],
        status="issued",
        subtotal=plan.amount,
        subtotal_excluding_tax=plan.amount,
        total=plan.amount,
        total_excluding_tax=plan.amount,
        type="pre_payment" if plan.pre_payment else "post_payment",
        voided_at=None,
    )
    apply_metadata(note["metadata"], p.metadata())
    return note


@route("POST", "/v1/credit_notes")
def create_credit_note(state: State, p: Params) -> Obj:
    plan = plan_credit_note(state, p)
    note = state.add(_credit_note(state, plan, p))
    invoice = plan.invoice
    before = snapshot(invoice)
    if plan.pre_payment:
        invoice["pre_payment_credit_notes_amount"] += plan.amount
        refresh_totals(invoice, invoice["starting_balance"])
    else:
        invoice["post_payment_credit_notes_amount"] += plan.amount
    if plan.refund_amount and plan.charge is not None:
        refund = refund_charge(
            state,
            plan.charge,
            plan.refund_amount,
            reason=_REFUND_REASONS.get(note["reason"] or "", "requested_by_customer"),
        )
        note["refunds"] = [
            {
                "amount_refunded": plan.refund_amount,
                "payment_record_refund": None,
                "refund": refund["id"],
                "type": "refund",
            }
        ]
    if plan.credit_amount:
        customer = state.get("customer", invoice["customer"])
        txn = adjust_balance(
            state,
            customer,
            -plan.credit_amount,
            "credit_note",
            invoice["currency"],
            credit_note=note["id"],
            invoice=invoice["id"],
        )
        note["customer_balance_transaction"] = txn["id"]
    state.emit("credit_note.created", note)
    state.emit_update("invoice.updated", invoice, before)
    if plan.pre_payment and invoice["amount_remaining"] == 0:
        mark_paid(state, invoice, out_of_band=True)
    return note


@route("GET", "/v1/credit_notes/preview")
def preview_credit_note(state: State, p: Params) -> Obj:
    plan = plan_credit_note(state, p)
    note = _credit_note(state, plan, p)
    note["refunds"] = []
    return note


@route("GET", "/v1/credit_notes/{note_id}")
def retrieve_credit_note(state: State, p: Params, note_id: str) -> Obj:
    return state.get("credit_note", note_id)


@route("GET", "/v1/credit_notes/{note_id}/lines")
def list_credit_note_lines(state: State, p: Params, note_id: str) -> Obj:
    note = state.get("credit_note", note_id)
    return paginate(note["lines"]["data"], p, f"/v1/credit_notes/{note_id}/lines")


@route("GET", "/v1/credit_notes")
def list_credit_notes(state: State, p: Params) -> Obj:
    items = list_filter(
        state.scan("credit_note"), invoice=p.text("invoice"), customer=p.text("customer")
    )
    return paginate(newest_first(created_filter(items, p)), p, "/v1/credit_notes")


@route("POST", "/v1/credit_notes/{note_id}")
def update_credit_note(state: State, p: Params, note_id: str) -> Obj:
    note = state.get("credit_note", note_id)
    before = snapshot(note)
    if p.has("memo"):
        note["memo"] = p.text("memo")
    apply_metadata(note["metadata"], p.metadata())
    state.emit_update("credit_note.updated", note, before)
    return note


@route("POST", "/v1/credit_notes/{note_id}/void")
def void_credit_note(state: State, p: Params, note_id: str) -> Obj:
    note = state.get("credit_note", note_id)
    if note["status"] != "issued":
        raise invalid("This credit note is already voided.")
    if note["refunds"]:
        raise invalid("A credit note that refunded a payment cannot be voided.")
    invoice = state.get("invoice", note["invoice"])
    before = snapshot(invoice)
    if note["type"] == "pre_payment":
        if invoice["status"] != "open":
            raise invalid(
                "This credit note cannot be voided because its invoice is no longer open."
            )
        invoice["pre_payment_credit_notes_amount"] -= note["amount"]
        refresh_totals(invoice, invoice["starting_balance"])
    else:
        invoice["post_payment_credit_notes_amount"] -= note["amount"]
    txn_id = note["customer_balance_transaction"]
    if txn_id:
        txn = state.get("customer_balance_transaction", txn_id)
        adjust_balance(
            state,
            state.get("customer", invoice["customer"]),
            -int(txn["amount"]),
            "credit_note",
            invoice["currency"],
            credit_note=note["id"],
            invoice=invoice["id"],
        )
    note["status"] = "void"
    note["voided_at"] = state.now()
    state.emit("credit_note.voided", note, {"status": "issued"})
    state.emit_update("invoice.updated", invoice, before)
    return note
