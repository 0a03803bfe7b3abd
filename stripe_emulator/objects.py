"""Object shapes: Stripe's official example objects with neutral values, filled in by builders."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from stripe_emulator import reference

Obj = dict[str, Any]

FIXTURES = Path(__file__).parent / "fixtures" / "stripe_fixtures.json"

_NULL_ADDRESS = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}
_NULL_BILLING_DETAILS = {
    "address": dict(_NULL_ADDRESS),
    "email": None,
    "name": None,
    "phone": None,
    "tax_id": None,
}

# What a freshly created object carries for the fields the emulator does not model.
# The example objects fill every optional field with sample data (a discount, transfer
# data, a quote parent, …); a real object has null/false/empty there instead. Keys
# left out here keep the example's value, which is already a realistic default.
NEUTRAL: dict[str, Obj] = {
    "customer": {
        "address": None,
        "currency": None,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "name": None,
        "shipping": None,
    },
    "product": {
        "default_price": None,
        "description": None,
        "package_dimensions": None,
        "type": "service",
    },
    "price": {"custom_unit_amount": None, "transform_quantity": None},
    "plan": {"transform_usage": None},
    "subscription_item": {"billing_thresholds": None},
    "subscription": {
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "latest_invoice": None,
        "managed_payments": None,
        "next_pending_invoice_item_invoice": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_update": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_start": None,
    },
    "invoice": {
        "account_name": "Stripe Emulator",
        "amount_overpaid": 0,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "customer_address": None,
        "customer_shipping": None,
        "due_date": None,
        "effective_at": None,
        "from_invoice": None,
        "last_finalization_error": None,
        "next_payment_attempt": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "shipping_cost": None,
        "shipping_details": None,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    },
    "line_item": {"pretax_credit_amounts": [], "taxes": []},
    "invoiceitem": {"net_amount": 0, "parent": None},
    "checkout.session": {
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "cancel_url": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "currency_conversion": None,
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer_details": None,
        "discounts": [],
        "invoice_creation": None,
        "managed_payments": None,
        "payment_intent": None,
        "payment_method_configuration_details": None,
        "permissions": None,
        "saved_payment_method_options": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "wallet_options": None,
    },
    "item": {"adjustable_quantity": None},
    "payment_intent": {
        "automatic_payment_methods": None,
        "canceled_at": None,
        "last_payment_error": None,
        "managed_payments": None,
        "next_action": None,
        "payment_method_configuration_details": None,
        "processing": None,
        "shipping": None,
        "transfer_data": None,
    },
    "charge": {
        "balance_transaction": None,
        "billing_details": _NULL_BILLING_DETAILS,
        "calculated_statement_descriptor": "STRIPE EMULATOR",
        "shipping": None,
        "source": None,
        "transfer_data": None,
    },
    "refund": {"destination_details": {"card": {"type": "refund"}, "type": "card"}},
    "payment_method": {"billing_details": _NULL_BILLING_DETAILS},
    "credit_note": {"shipping_cost": None, "pretax_credit_amounts": [], "total_taxes": []},
    "credit_note_line_item": {"pretax_credit_amounts": [], "taxes": [], "metadata": {}},
    "billing_portal.session": {"configuration": "bpc_emulator", "flow": None},
    "event": {},
    "webhook_endpoint": {},
    "invoice_payment": {},
    "customer_balance_transaction": {},
}


@cache
def fixtures() -> dict[str, Obj]:
    resources: dict[str, Obj] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def schema_of(resource: str) -> reference.Schema:
    """Stripe's type for a fixture resource name (`invoice`, `deleted_customer`, `item`)."""
    deleted = resource.startswith("deleted_")
    kind = resource.removeprefix("deleted_")
    for ref in reference.reference()["objects"][kind]:
        if ref["$ref"].startswith("Deleted") == deleted:
            return reference.resolve(ref)
    raise KeyError(resource)


@cache
def _template(resource: str) -> bytes:
    """The example object with neutral values, JSON-encoded: decoding it is a fast deep copy.

    The example (an older API version's) gives realistic values; the pinned version's type
    decides the keys: what it removed goes, what it added or made required comes in neutral.
    """
    template = copy.deepcopy(fixtures()[resource])
    overrides = NEUTRAL.get(resource, {})
    template.update(copy.deepcopy(overrides))
    data = template.get("data") if resource == "event" else None
    template = conform(template, schema_of(resource))
    if data is not None:
        template["data"] = data  # an event's data is typed per event type; `emit` sets it
    unknown = set(overrides) - set(template)
    if unknown:
        raise KeyError(f"{resource}: neutral values for keys Stripe does not send: {unknown}")
    if "livemode" in template:
        template["livemode"] = False
    return msgspec.json.encode(template)


def conform(value: Any, schema: reference.Schema) -> Any:
    """`value` with the keys `schema` has: unknown ones dropped, missing required ones neutral."""
    schema = reference.resolve(schema)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            option = reference.resolve(option)
            if _fits(option, value):
                return conform(value, option)
        return neutral(schema)
    if isinstance(value, list) and schema.get("type") == "array":
        return [conform(v, schema["items"]) for v in value]
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", False)
    out = {}
    for key, item in value.items():
        if key in properties:
            out[key] = conform(item, properties[key])
        elif extra is not False:
            out[key] = item
    for key in schema.get("required", []):
        if key not in out:
            out[key] = neutral(properties[key])
    return out


def _fits(schema: reference.Schema, value: Any) -> bool:
    if "anyOf" in schema:
        return any(_fits(reference.resolve(o), value) for o in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object" or "x-unchecked" in schema:
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    if "enum" in schema or "const" in schema:
        return value in schema.get("enum", [schema.get("const")])
    return kind is None or (not isinstance(value, dict | list) and value is not None)


def neutral(schema: reference.Schema) -> Any:
    """What an unmodelled field holds: null where allowed, else an empty value of its type."""
    schema = reference.resolve(schema)
    options = [reference.resolve(o) for o in schema.get("anyOf", [schema])]
    if any(o.get("type") == "null" for o in options):
        return None
    first = options[0]
    if "enum" in first or "const" in first:
        return first.get("enum", [first.get("const")])[0]
    kind = first.get("type")
    if kind == "object":
        properties = first.get("properties", {})
        return {k: neutral(properties[k]) for k in first.get("required", [])}
    return {"array": [], "string": "", "number": 0, "boolean": False}.get(str(kind))


def build(resource: str, **fields: Any) -> Obj:
    """A new object of `resource` with exactly the example's keys and `fields` set."""
    obj: Obj = msgspec.json.decode(_template(resource))
    unknown = fields.keys() - obj.keys()
    if unknown:
        raise KeyError(f"{resource} has no fields {sorted(unknown)}")
    obj.update(fields)
    return obj


def deleted(resource: str, object_id: str) -> Obj:
    return build(f"deleted_{resource}", id=object_id)


def list_object(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def public(obj: Any) -> Any:
    """A deep copy without the emulator's bookkeeping.

    Bookkeeping fields start with `_` and live at the top level of stored objects only;
    anything nested (items, lines, embedded objects) is already public.
    """
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if not k.startswith("_")}
    return msgspec.json.decode(msgspec.json.encode(obj))
