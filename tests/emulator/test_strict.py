"""Requests are checked like Stripe checks them: unknown parameters and expand paths get a 400."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from stripe_emulator import reference
from stripe_emulator.routing import ROUTES

from .helpers import customer_with_card, monthly_price

ROOT = Path(__file__).resolve().parents[2]

# Every call billing/stripe_gateway.py makes, as (method, path) with an id where one goes.
GATEWAY_ENDPOINTS = [
    ("POST", "/v1/customers"),
    ("GET", "/v1/customers/cus_x"),
    ("POST", "/v1/billing_portal/sessions"),
    ("GET", "/v1/prices"),
    ("POST", "/v1/products"),
    ("POST", "/v1/prices"),
    ("POST", "/v1/checkout/sessions"),
    ("POST", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions/sub_x"),
    ("POST", "/v1/invoices/create_preview"),
    ("POST", "/v1/subscriptions/sub_x"),
    ("DELETE", "/v1/subscriptions/sub_x"),
    ("POST", "/v1/payment_intents"),
    ("GET", "/v1/checkout/sessions/cs_x"),
    ("POST", "/v1/refunds"),
    ("GET", "/v1/invoices"),
    ("POST", "/v1/credit_notes"),
    ("POST", "/v1/invoiceitems"),
    # What the service's tests and the catch-up read besides.
    ("GET", "/v1/events"),
    ("GET", "/v1/payment_methods"),
]


def test_the_reference_is_for_the_api_version_the_sdk_pins() -> None:
    source = reference.reference()["source"]
    assert source["api_version"] == stripe.api_version
    assert source["npm_package"] == "stripe"
    assert source["npm_version"]


def test_every_emulator_route_has_declared_params() -> None:
    from stripe_emulator.emulator import HELPER_PARAMS

    for found in ROUTES:
        known = reference.endpoint(found.method, found.template) or HELPER_PARAMS.get(
            found.template
        )
        assert known is not None, f"{found.method} {found.template}"


def test_the_gateway_only_calls_endpoints_with_a_reference() -> None:
    for method, path in GATEWAY_ENDPOINTS:
        template = "/".join("{}" if "_x" in part else part for part in path.split("/"))
        assert reference.endpoint(method, template) is not None, path


async def _send(raw: httpx.AsyncClient, method: str, path: str, form: dict[str, str]) -> Any:
    if method in ("GET", "DELETE"):  # the SDK sends these parameters in the query
        response = await raw.request(method, path, params=form)
    else:
        response = await raw.request(method, path, data=form)
    return response


@pytest.mark.parametrize(("method", "path"), GATEWAY_ENDPOINTS)
async def test_unknown_parameters_are_refused_on_every_gateway_endpoint(
    raw: httpx.AsyncClient, method: str, path: str
) -> None:
    for form, param in (
        ({"foo": "bar"}, "foo"),
        ({"zzz[deep]": "1"}, "zzz"),
    ):
        response = await _send(raw, method, path, form)
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "parameter_unknown"
        assert error["param"] == param
        assert error["message"] == f"Received unknown parameter: {param}"


@pytest.mark.parametrize(("method", "path"), GATEWAY_ENDPOINTS)
async def test_unknown_expand_paths_are_refused_on_every_gateway_endpoint(
    raw: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await _send(raw, method, path, {"expand[]": "bogus"})
    assert response.status_code == 400, (path, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "This property cannot be expanded (bogus)."
    assert error["param"] == "expand[0]"


async def test_nested_unknown_parameters_name_their_full_path(
    raw: httpx.AsyncClient, client: stripe.StripeClient
) -> None:
    customer = await customer_with_card(client)
    response = await raw.post(
        f"/v1/customers/{customer.id}", data={"invoice_settings[bogus]": "1", "name": "New"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "invoice_settings[bogus]"
    assert response.json()["error"]["code"] == "parameter_unknown"
    price = await monthly_price(client)
    response = await raw.post(
        "/v1/subscriptions",
        data={"customer": customer.id, "items[0][price]": price.id, "items[0][colour]": "red"},
    )
    assert response.json()["error"]["param"] == "items[0][colour]"
    # A refused request changes nothing.
    assert (await client.v1.customers.retrieve_async(customer.id)).name == "Example Ltd"
    subs = await client.v1.subscriptions.list_async(params={"customer": customer.id})
    assert subs.data == []


async def test_expands_the_pinned_version_removed_are_refused(
    raw: httpx.AsyncClient, client: stripe.StripeClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    removed = await raw.get(
        f"/v1/invoices/{sub.latest_invoice}", params={"expand[]": "payment_intent"}
    )
    assert removed.status_code == 400
    assert removed.json()["error"]["message"] == (
        "This property cannot be expanded (payment_intent)."
    )
    # Its current form works, nested through the list of payments.
    current = await raw.get(
        f"/v1/invoices/{sub.latest_invoice}",
        params={"expand[]": "payments.data.payment.payment_intent"},
    )
    assert current.status_code == 200, current.text
    payment = current.json()["payments"]["data"][0]["payment"]
    assert payment["payment_intent"]["object"] == "payment_intent"
    # A list expands under `data.`, as on Stripe.
    listed = await raw.get("/v1/subscriptions", params={"expand[]": "data.latest_invoice"})
    assert listed.json()["data"][0]["latest_invoice"]["object"] == "invoice"
    bare = await raw.get("/v1/subscriptions", params={"expand[]": "latest_invoice"})
    assert bare.status_code == 400


async def test_what_stripe_expands_on_a_customer_expands_here(
    raw: httpx.AsyncClient, client: stripe.StripeClient
) -> None:
    """dj-stripe re-fetches every customer with `default_source` (a union of source types)
    and `sources` (includable) expanded; Stripe answers, so the emulator must too."""
    customer = await customer_with_card(client)
    both = await raw.get(
        f"/v1/customers/{customer.id}", params={"expand[]": ["default_source", "sources"]}
    )
    assert both.status_code == 200, both.text
    body = both.json()
    assert body["default_source"] is None  # its card is a PaymentMethod, not a source
    assert body["sources"] == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/customers/{customer.id}/sources",
    }
    plain = await raw.get(f"/v1/customers/{customer.id}")
    assert "sources" not in plain.json()
    # A plain string field still does not expand.
    email = await raw.get(f"/v1/customers/{customer.id}", params={"expand[]": "email"})
    assert email.status_code == 400
    assert email.json()["error"]["message"] == "This property cannot be expanded (email)."


async def test_values_are_checked_against_the_declared_types(raw: httpx.AsyncClient) -> None:
    cases = [
        ({"amount": "ten", "currency": "usd"}, "amount", "parameter_invalid_integer"),
        ({"amount": "1000", "currency": "usd", "capture_method": "later"}, "capture_method", None),
        ({"amount": "1000", "currency": "usd", "description": ""}, "description", None),
    ]
    for form, param, code in cases:
        response = await raw.post("/v1/payment_intents", data=form)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param
        if code:
            assert error["code"] == code
    empty = await raw.post("/v1/customers", data={"email": ""})
    assert empty.json()["error"]["code"] == "parameter_invalid_empty"


async def test_a_refused_request_does_not_use_up_its_idempotency_key(
    raw: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "strict-1"}
    bad = await raw.post("/v1/customers", data={"foo": "bar"}, headers=headers)
    assert bad.status_code == 400
    good = await raw.post("/v1/customers", data={"name": "Acme"}, headers=headers)
    assert good.status_code == 200, good.text


def test_the_committed_reference_is_what_the_generator_writes_from_its_source() -> None:
    data = json.loads((ROOT / "stripe_emulator" / "reference" / "stripe.json").read_text())
    assert data["source"]["generated_by"] == "tools/stripe_reference.py"
    assert data["unresolved"] == []
    assert set(data["events"]) <= set(data["event_types"])


# The Python SDK's typed params for the same endpoints (its own generation for the version).
SDK_PARAMS = {
    "POST /v1/customers": "CustomerCreateParams",
    "GET /v1/customers/{}": "CustomerRetrieveParams",
    "GET /v1/prices": "PriceListParams",
    "POST /v1/products": "ProductCreateParams",
    "POST /v1/prices": "PriceCreateParams",
    "POST /v1/subscriptions": "SubscriptionCreateParams",
    "GET /v1/subscriptions/{}": "SubscriptionRetrieveParams",
    "POST /v1/invoices/create_preview": "InvoiceCreatePreviewParams",
    "POST /v1/subscriptions/{}": "SubscriptionUpdateParams",
    "DELETE /v1/subscriptions/{}": "SubscriptionCancelParams",
    "POST /v1/payment_intents": "PaymentIntentCreateParams",
    "POST /v1/refunds": "RefundCreateParams",
    "GET /v1/invoices": "InvoiceListParams",
    "POST /v1/credit_notes": "CreditNoteCreateParams",
    "POST /v1/invoiceitems": "InvoiceItemCreateParams",
    "GET /v1/events": "EventListParams",
    "GET /v1/customers/{}/payment_methods": "CustomerListPaymentMethodsParams",
}


@pytest.mark.parametrize(("key", "sdk_name"), sorted(SDK_PARAMS.items()))
def test_the_reference_accepts_what_the_pinned_python_sdk_sends(key: str, sdk_name: str) -> None:
    import stripe.params

    typed = getattr(stripe.params, sdk_name)
    options = stripe.RequestOptions.__required_keys__ | stripe.RequestOptions.__optional_keys__
    sdk = (typed.__required_keys__ | typed.__optional_keys__) - options
    declared = reference.resolve(reference.reference()["endpoints"][key]["params"])
    assert set(declared["properties"]) == sdk
    assert set(declared.get("required", [])) == typed.__required_keys__ - options
