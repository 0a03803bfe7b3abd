"""Event log endpoints and webhook endpoint objects (`/v1/events`, `/v1/webhook_endpoints`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from stripe_emulator.errors import invalid, missing, no_such
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id
from stripe_emulator.objects import Obj, build, deleted, list_object, public
from stripe_emulator.routing import route
from stripe_emulator.state import State, newest_first, paginate

RETENTION = 30 * 86_400  # Stripe keeps events for 30 days


def type_matches(patterns: list[str], event_type: str) -> bool:
    """Stripe's `*` wildcard: `*`, `invoice.*`, `*.created` (nothing else is special)."""
    return any(_pattern(p).fullmatch(event_type) for p in patterns)


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda t, b: t > b,
    "gte": lambda t, b: t >= b,
    "lt": lambda t, b: t < b,
    "lte": lambda t, b: t <= b,
}


def live_events(state: State) -> list[Obj]:
    """Events of the last 30 days, oldest first; older ones are forgotten, as on Stripe."""
    horizon = state.now() - RETENTION
    live = []
    for event in state.all("event"):
        if event["created"] < horizon:
            state.remove(event)
        else:
            live.append(event)
    return live


@route("GET", "/v1/events")
def list_events(state: State, p: Params) -> Obj:
    """Newest first; `type` (with `*`) or `types[]`, `created[gt|gte|lt|lte]`, cursors."""
    limit = p.integer("limit", 10)
    if limit is None or not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    if p.has("type") and p.has("types"):
        raise invalid("You may only specify one of these parameters: type, types.", param="types")
    all_events = live_events(state)
    position = {e["id"]: n for n, e in enumerate(all_events)}
    events = all_events
    patterns = p.texts("types") or ([p.text("type") or ""] if p.has("type") else [])
    if len(patterns) > 20:
        raise invalid("You may pass up to 20 event types.", param="types")
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
    newest = newest_first(events)
    # Cursors are positions in the whole log, so a cursor outside the filter still works.
    after, before = p.text("starting_after"), p.text("ending_before")
    if after:
        if after not in position:
            raise no_such("event", after, "starting_after")
        newest = [e for e in newest if position[e["id"]] < position[after]]
        return list_object([public(e) for e in newest[:limit]], "/v1/events", len(newest) > limit)
    if before:
        if before not in position:
            raise no_such("event", before, "ending_before")
        newer = [e for e in newest if position[e["id"]] > position[before]]
        return list_object([public(e) for e in newer[-limit:]], "/v1/events", len(newer) > limit)
    return list_object([public(e) for e in newest[:limit]], "/v1/events", len(newest) > limit)


@route("GET", "/v1/events/{event_id}")
def retrieve_event(state: State, p: Params, event_id: str) -> Obj:
    event = state.get("event", event_id)
    if event["created"] < state.now() - RETENTION:
        raise no_such("event", event_id)
    return event


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
    return paginate(newest_first(state.scan("webhook_endpoint")), p, "/v1/webhook_endpoints")


@route("DELETE", "/v1/webhook_endpoints/{endpoint_id}")
def delete_webhook_endpoint(state: State, p: Params, endpoint_id: str) -> Obj:
    endpoint = state.get("webhook_endpoint", endpoint_id)
    state.remove(endpoint)
    return deleted("webhook_endpoint", endpoint_id)
