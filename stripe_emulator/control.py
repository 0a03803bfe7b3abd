"""Control plane under `/_emulator/` (no auth, JSON): reset, faults, clock, webhooks, logs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from stripe_emulator.emulator import Emulator, Request, Response
from stripe_emulator.errors import StripeError, invalid
from stripe_emulator.forms import decode_query
from stripe_emulator.timeline import advance_clock, catch_up, clock_object

Handler = Callable[[Emulator, dict[str, Any], dict[str, Any]], Awaitable[Any]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def control(method: str, path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[(method, f"/_emulator{path}")] = handler
        return handler

    return register


async def handle(emulator: Emulator, request: Request) -> Response:
    handler = HANDLERS.get((request.method, request.path.rstrip("/")))
    if handler is None:
        known = sorted(f"{m} {p}" for m, p in HANDLERS)
        return Response.json(
            404, {"error": {"message": "Unknown control endpoint.", "known": known}}
        )
    try:
        body = json.loads(request.body) if request.body.strip() else {}
        if not isinstance(body, dict):
            raise invalid("The body must be a JSON object.")
        return Response.json(200, await handler(emulator, body, decode_query(request.query)))
    except ValueError:
        return Response.json(400, {"error": {"message": "The body must be JSON."}})
    except StripeError as e:
        return Response.error(e)


@control("GET", "/health")
async def health(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    return {"ok": True}


@control("POST", "/reset")
async def reset(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """Forget every object, event, idempotency key, fault and logged request; clock to real time."""
    emulator.reset()
    return {"reset": True}


@control("GET", "/state")
async def dump_state(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    state = emulator.state
    return {
        "now": state.now(),
        "counts": {kind: len(objs) for kind, objs in sorted(state.objects.items())},
        "pending_webhooks": emulator.webhooks.pending(),
        "faults": [f.to_json() for f in emulator.faults.rules],
        "webhook_url": state.webhook_url,
    }


@control("GET", "/shapes")
async def shapes(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """Responses and events checked against Stripe's types, and the differences found."""
    if emulator.shapes is None:
        raise invalid("Shape checking is off (start the emulator with check_shapes=True).")
    return emulator.shapes.to_json()


@control("GET", "/faults")
async def list_faults(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    return {"data": [f.to_json() for f in emulator.faults.rules]}


@control("POST", "/faults")
async def add_fault(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    return emulator.faults.add(body).to_json()


@control("DELETE", "/faults")
async def clear_faults(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    emulator.faults.clear()
    return {"data": []}


@control("GET", "/requests")
async def list_requests(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """The API request log, oldest first; `?path=` prefix, `?method=`, `?idempotency_key=`."""
    entries = emulator.requests
    if "path" in query:
        entries = [e for e in entries if e["path"].startswith(str(query["path"]))]
    if "method" in query:
        entries = [e for e in entries if e["method"] == str(query["method"]).upper()]
    if "idempotency_key" in query:
        entries = [e for e in entries if e["idempotency_key"] == query["idempotency_key"]]
    return {"data": entries}


@control("DELETE", "/requests")
async def clear_requests(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    emulator.requests = []
    return {"data": []}


@control("GET", "/clock")
async def get_clock(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    return clock_object(emulator.state)


@control("POST", "/clock")
async def move_clock(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """`{"advance_seconds": N}`, `{"frozen_time": T}` (freezes) or `{"unfreeze": true}`."""
    if body.get("unfreeze"):
        emulator.state.clock.unfreeze()
        return clock_object(emulator.state)
    seconds = body.get("advance_seconds", body.get("seconds"))
    frozen_time = body.get("frozen_time")
    for name, value in (("advance_seconds", seconds), ("frozen_time", frozen_time)):
        if value is not None and not isinstance(value, int):
            raise invalid(f"`{name}` must be an integer.", param=name)
    return advance_clock(emulator.state, seconds=seconds, frozen_time=frozen_time)


@control("POST", "/tick")
async def tick(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """Run whatever fell due by the current emulator time."""
    return {"steps": catch_up(emulator.state), **clock_object(emulator.state)}


@control("GET", "/config")
async def get_config(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    state = emulator.state
    return {
        "webhook_url": state.webhook_url,
        "webhook_secret": state.webhook_secret,
        "webhook_time_scale": emulator.webhooks.time_scale,
        "data_file": str(state.store.path) if state.store is not None else None,
    }


@control("POST", "/config")
async def set_config(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """`{"webhook_url": "http://…" | null, "webhook_secret": "whsec_…"}`, and
    `{"webhook_time_scale": 0.001}` to compress the retry schedule."""
    state = emulator.state
    if "webhook_url" in body:
        state.webhook_url = body["webhook_url"] or None
    if body.get("webhook_secret"):
        state.webhook_secret = str(body["webhook_secret"])
    if "webhook_time_scale" in body:
        scale = body["webhook_time_scale"]
        if not isinstance(scale, int | float) or scale <= 0:
            raise invalid("`webhook_time_scale` must be a positive number.")
        emulator.webhooks.time_scale = float(scale)
    return await get_config(emulator, body, query)


@control("GET", "/webhooks")
async def list_deliveries(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    return {"pending": emulator.webhooks.pending(), "data": emulator.webhooks.deliveries}


@control("POST", "/webhooks/flush")
async def flush_webhooks(emulator: Emulator, body: dict[str, Any], query: dict[str, Any]) -> Any:
    """Wait (up to `timeout` seconds, default 30) until queued deliveries are done."""
    done = await emulator.webhooks.flush(float(body.get("timeout", 30)))
    deliveries = emulator.webhooks.deliveries
    return {
        "done": done,
        "pending": emulator.webhooks.pending(),
        "delivered": sum(1 for d in deliveries if d["delivered"]),
        "failed": sum(1 for d in deliveries if not d["delivered"] and d["attempts"]),
    }
