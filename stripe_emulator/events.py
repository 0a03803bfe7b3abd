"""Event log endpoints and webhook endpoint objects (`/v1/events`, `/v1/webhook_endpoints`)."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase

from stripe_emulator.errors import missing
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id
from stripe_emulator.objects import Obj, build, deleted, public
from stripe_emulator.routing import route
from stripe_emulator.state import State, newest_first, paginate


def type_matches(patterns: list[str], event_type: str) -> bool:
    """Stripe's `*` and `invoice.*` wildcards."""
    return any(p == "*" or fnmatchcase(event_type, p) for p in patterns)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda t, b: t > b,
    "gte": lambda t, b: t >= b,
    "lt": lambda t, b: t < b,
    "lte": lambda t, b: t <= b,
}


@route("GET", "/v1/events")
def list_events(state: State, p: Params) -> Obj:
    events = state.all("event")
    patterns = p.texts("types") or ([p.text("type") or ""] if p.has("type") else [])
    if patterns:
        events = [e for e in events if type_matches(patterns, e["type"])]
    created = p.raw("created")
    if isinstance(created, dict):
        bounds = p.sub("created")
        for op, keep in _COMPARE.items():
            bound = bounds.integer(op)
            if bound is not None:
                events = [e for e in events if keep(e["created"], bound)]
    elif created is not None:
        moment = p.integer("created")
        events = [e for e in events if e["created"] == moment]
    return paginate(newest_first(events), p, "/v1/events")


@route("GET", "/v1/events/{event_id}")
def retrieve_event(state: State, p: Params, event_id: str) -> Obj:
    return state.get("event", event_id)


@route("POST", "/v1/webhook_endpoints")
def create_webhook_endpoint(state: State, p: Params) -> Obj:
    events = p.texts("enabled_events")
    if not events:
        raise missing("enabled_events")
    endpoint = build(
        "webhook_endpoint",
        id=new_id("we"),
        api_version=p.text("api_version"),
        created=state.now(),
        description=p.text("description"),
        enabled_events=events,
        metadata={},
        status="enabled",
        url=p.req_text("url"),
    )
    apply_metadata(endpoint["metadata"], p.metadata())
    endpoint["_secret"] = state.webhook_secret
    state.add(endpoint)
    # Only the creation response reveals the signing secret, as on Stripe.
    return {**public(endpoint), "secret": endpoint["_secret"]}


@route("GET", "/v1/webhook_endpoints/{endpoint_id}")
def retrieve_webhook_endpoint(state: State, p: Params, endpoint_id: str) -> Obj:
    return state.get("webhook_endpoint", endpoint_id)


@route("POST", "/v1/webhook_endpoints/{endpoint_id}")
def update_webhook_endpoint(state: State, p: Params, endpoint_id: str) -> Obj:
    endpoint = state.get("webhook_endpoint", endpoint_id)
    for field in ("url", "description"):
        if p.has(field):
            endpoint[field] = p.text(field)
    if p.has("enabled_events"):
        endpoint["enabled_events"] = p.texts("enabled_events")
    if p.has("disabled"):
        endpoint["status"] = "disabled" if p.flag("disabled") else "enabled"
    apply_metadata(endpoint["metadata"], p.metadata())
    return endpoint


@route("GET", "/v1/webhook_endpoints")
def list_webhook_endpoints(state: State, p: Params) -> Obj:
    return paginate(newest_first(state.all("webhook_endpoint")), p, "/v1/webhook_endpoints")


@route("DELETE", "/v1/webhook_endpoints/{endpoint_id}")
def delete_webhook_endpoint(state: State, p: Params, endpoint_id: str) -> Obj:
    endpoint = state.get("webhook_endpoint", endpoint_id)
    state.remove(endpoint)
    return deleted("webhook_endpoint", endpoint_id)
