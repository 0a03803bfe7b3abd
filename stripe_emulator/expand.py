"""`expand[]`: replace ids in a response with the objects they name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stripe_emulator.errors import invalid
from stripe_emulator.objects import Obj, list_object, public
from stripe_emulator.state import State, list_filter


def _invoice_payments(state: State, raw: Obj) -> Any:
    payments = list_filter(state.scan("invoice_payment"), invoice=raw["id"])
    return list_object([public(p) for p in payments], f"/v1/invoice_payments?invoice={raw['id']}")


def _session_line_items(state: State, raw: Obj) -> Any:
    return list_object(public(raw["_line_items"]), f"/v1/checkout/sessions/{raw['id']}/line_items")


def _customer_sources(state: State, raw: Obj) -> Any:
    # Legacy sources (tokens, Sources API) are not modelled: cards here are PaymentMethods,
    # which Stripe does not list among a customer's sources.
    return list_object([], f"/v1/customers/{raw['id']}/sources")


# Properties an object only has when expanded (`includable` in Stripe's spec). Which
# paths may be expanded at all is checked against the reference before a request runs.
_INCLUDABLE: dict[tuple[str, str], Callable[[State, Obj], Any]] = {
    ("invoice", "payments"): _invoice_payments,
    ("checkout.session", "line_items"): _session_line_items,
    ("customer", "sources"): _customer_sources,
}


def render(state: State, obj: Obj, paths: list[str]) -> Obj:
    """A public copy of `obj` with every `a.b.c` path in `paths` expanded."""
    out: Obj = public(obj)
    for path in paths:
        _expand(state, out, path.split("."))
    return out


def _expand(state: State, node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _expand(state, item, parts)
        return
    if not isinstance(node, dict) or not parts:
        return
    key, rest = parts[0], parts[1:]
    if key in node:
        value = node[key]
    else:
        includable = _INCLUDABLE.get((str(node.get("object")), key))
        raw = state.find(str(node.get("id")))
        if includable is None:
            # Valid for Stripe (the reference let it through) but not modelled here: say so
            # rather than answer without it.
            raise invalid(
                f"The Stripe emulator does not model expanding `{key}` on {node.get('object')}.",
                param="expand",
            )
        if raw is None:
            return
        value = includable(state, raw)
    if isinstance(value, str):
        target = state.find(value)
        if target is not None:
            value = public(target)
    node[key] = value
    _expand(state, value, rest)
