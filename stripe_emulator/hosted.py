"""Minimal Stripe-hosted pages for manual testing: Checkout, invoice, 3DS, portal, receipt."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs

from stripe_emulator import checkout, invoices, payments
from stripe_emulator.emulator import Request, Response
from stripe_emulator.errors import StripeError
from stripe_emulator.objects import Obj
from stripe_emulator.state import State, list_filter

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;color:#222}}
button{{font-size:1rem;padding:.5rem 1rem;margin:.25rem}}td{{padding:.2rem .6rem}}
.note{{color:#666;font-size:.85rem}}</style></head><body><h1>{title}</h1>{body}
<p class="note">Stripe emulator — test mode, no real money moves.</p></body></html>"""


def _page(title: str, body: str, status: int = 200) -> Response:
    text = _PAGE.format(title=html.escape(title), body=body)
    return Response(status, text.encode(), content_type="text/html; charset=utf-8")


def _redirect(url: str) -> Response:
    return Response(303, b"", {"Location": url}, content_type="text/plain")


def _buttons(action: str, choices: dict[str, str]) -> str:
    buttons = "".join(
        f'<button name="outcome" value="{html.escape(v)}">{html.escape(label)}</button>'
        for label, v in choices.items()
    )
    return f'<form method="post" action="{html.escape(action)}">{buttons}</form>'


def _money(amount: int, currency: str) -> str:
    return html.escape(invoices.money(amount, currency))


def handle(state: State, request: Request) -> Response:
    """Route a hosted-page request; actions run as the customer (events carry no request)."""
    outcome = parse_qs(request.body.decode()).get("outcome", [""])[0]
    routes = {
        r"/c/pay/(?P<id>[^/]+)": _checkout_page,
        r"/i/(?P<id>[^/]+)": _invoice_page,
        r"/i/(?P<id>[^/]+)/pdf": _invoice_pdf,
        r"/authenticate/(?P<id>[^/]+)": _authenticate_page,
        r"/p/session/(?P<id>[^/]+)": _portal_page,
        r"/receipts/(?P<id>[^/]+)": _receipt_page,
    }
    for pattern, page in routes.items():
        found = re.fullmatch(pattern, request.path)
        if found:
            try:
                return page(state, found["id"], outcome if request.method == "POST" else None)
            except StripeError as e:
                return _page("Something went wrong", f"<p>{html.escape(e.message)}</p>", e.status)
    return Response.json(404, {"error": {"message": f"No page at {request.path}."}})


def _checkout_page(state: State, session_id: str, outcome: str | None) -> Response:
    session = state.get("checkout.session", session_id)
    if outcome:
        checkout.complete(state, session, checkout.OUTCOME_CARDS.get(outcome, "pm_card_visa"))
        if session["status"] == "complete" and session["success_url"]:
            return _redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
    rows = "".join(
        f"<tr><td>{item['quantity']} {invoices.TIMES} {html.escape(item['description'])}</td>"
        f"<td>{_money(item['amount_total'], item['currency'])}</td></tr>"
        for item in session["_line_items"]
    )
    body = f"<table>{rows}</table><p>Total {_money(session['amount_total'], session['currency'])}"
    body += f" — status <b>{session['status']}</b>, payment <b>{session['payment_status']}</b></p>"
    if outcome and session["status"] == "open":
        body += "<p><b>Your card was declined.</b></p>"
    if session["status"] == "open":
        body += _buttons(
            "", {"Pay with 4242 (succeeds)": "paid", "Pay with 0002 (declined)": "declined"}
        )
        if session["cancel_url"]:
            body += f'<p><a href="{html.escape(session["cancel_url"])}">Cancel</a></p>'
    return _page("Checkout", body)


def _invoice_page(state: State, invoice_id: str, outcome: str | None) -> Response:
    invoice = state.get("invoice", invoice_id)
    if outcome and invoice["status"] == "open":
        pi_id = invoice["_payment_intent"]
        pi = state.find(pi_id) if pi_id else None
        if pi is not None and pi["status"] == "requires_action":
            payments.authenticate(state, pi, passed=outcome == "paid")
        else:
            card = checkout.OUTCOME_CARDS.get(outcome, "pm_card_visa")
            invoices.collect(state, invoice, card, off_session=False)
    rows = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td>"
        f"<td>{_money(line['amount'], line['currency'])}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    body = f"<p>Invoice {html.escape(invoice['number'] or invoice_id)}</p><table>{rows}</table>"
    body += f"<p>Amount due {_money(invoice['amount_due'], invoice['currency'])}"
    body += f" — status <b>{invoice['status']}</b></p>"
    if invoice["status"] == "open":
        body += _buttons("", {"Pay (authenticate)": "paid", "Decline": "declined"})
    return _page("Invoice", body)


def _invoice_pdf(state: State, invoice_id: str, outcome: str | None) -> Response:
    invoice = state.get("invoice", invoice_id)
    text = f"Invoice {invoice['number']}: {invoices.money(invoice['total'], invoice['currency'])}"
    return Response(200, text.encode(), content_type="text/plain; charset=utf-8")


def _authenticate_page(state: State, pi_id: str, outcome: str | None) -> Response:
    pi = state.get("payment_intent", pi_id)
    if outcome and pi["status"] == "requires_action":
        payments.authenticate(state, pi, passed=outcome == "paid")
    body = f"<p>Payment of {_money(pi['amount'], pi['currency'])}: <b>{pi['status']}</b></p>"
    if pi["status"] == "requires_action":
        body += _buttons("", {"Complete authentication": "paid", "Fail authentication": "failed"})
    return _page("3D Secure", body)


def _portal_page(state: State, session_id: str, outcome: str | None) -> Response:
    session: Obj = state.get("billing_portal.session", session_id)
    subs = list_filter(state.scan("subscription"), customer=session["customer"])
    rows = "".join(f"<tr><td>{html.escape(s['id'])}</td><td>{s['status']}</td></tr>" for s in subs)
    back = session["return_url"] or ""
    body = f'<table>{rows}</table><p><a href="{html.escape(back)}">Return</a></p>'
    return _page("Billing portal", body)


def _receipt_page(state: State, pi_id: str, outcome: str | None) -> Response:
    pi = state.get("payment_intent", pi_id)
    return _page("Receipt", f"<p>Paid {_money(pi['amount_received'], pi['currency'])}</p>")
