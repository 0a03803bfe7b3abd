"""In-memory store of Stripe objects, the event log, and the request being handled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe

from stripe_emulator import reference
from stripe_emulator.clock import Clock
from stripe_emulator.errors import invalid, no_such
from stripe_emulator.forms import Params
from stripe_emulator.ids import new_id
from stripe_emulator.objects import Obj, build, list_object, public

# Where Stripe's "No such …" message names a kind other than by its object name.
_LABELS = {"payment_method": "PaymentMethod"}


@dataclass(frozen=True)
class RequestInfo:
    """The API request that caused what happens now (null for the clock's own work)."""

    id: str | None = None
    idempotency_key: str | None = None


EventListener = Callable[[Obj], None]


class State:
    """All Stripe objects by kind and id; one asyncio loop touches it, so no locks."""

    def __init__(self, webhook_url: str | None = None, webhook_secret: str = "") -> None:
        self.clock = Clock()
        self.api_version: str = stripe.api_version
        self.base_url = "http://127.0.0.1:12111"
        # Configuration, kept across resets.
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.listeners: list[EventListener] = []
        self.request = RequestInfo()
        self.objects: dict[str, dict[str, Obj]] = {}
        self.by_id: dict[str, Obj] = {}
        self.lookup_keys: dict[str, str] = {}
        # Nothing falls due before this moment (None: unknown); see `timeline.catch_up`.
        # Every new object and every event (each state change emits one) clears it.
        self.wake_at: float | None = None

    def reset(self) -> None:
        self.clock.reset()
        self.request = RequestInfo()
        self.objects = {}
        self.by_id = {}
        self.lookup_keys = {}
        self.wake_at = None

    def now(self) -> int:
        return self.clock.now()

    # -- objects ---------------------------------------------------------------------

    def add(self, obj: Obj) -> Obj:
        self.wake_at = None
        self.objects.setdefault(obj["object"], {})[obj["id"]] = obj
        self.by_id[obj["id"]] = obj
        return obj

    def remove(self, obj: Obj) -> None:
        self.objects.get(obj["object"], {}).pop(obj["id"], None)
        self.by_id.pop(obj["id"], None)

    def find(self, object_id: str) -> Obj | None:
        return self.by_id.get(object_id)

    def get(self, kind: str, object_id: str | None, param: str = "id") -> Obj:
        obj = self.objects.get(kind, {}).get(object_id or "")
        if obj is None:
            raise no_such(_LABELS.get(kind, kind), object_id or "", param)
        return obj

    def all(self, kind: str) -> list[Obj]:
        """Oldest first (insertion order)."""
        return list(self.objects.get(kind, {}).values())

    # -- events ----------------------------------------------------------------------

    def emit(self, type_: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record an event with a snapshot of `obj` now and tell the webhook dispatcher."""
        if not reference.is_event_type(type_):
            raise ValueError(f"{type_!r} is not a Stripe event type for {self.api_version}")
        data: Obj = {"object": public(obj)}
        if previous:
            data["previous_attributes"] = public(previous)
        event = build(
            "event",
            id=new_id("evt"),
            api_version=self.api_version,
            created=self.now(),
            data=data,
            pending_webhooks=0,
            request={"id": self.request.id, "idempotency_key": self.request.idempotency_key},
            type=type_,
        )
        self.add(event)
        for listener in self.listeners:
            listener(event)
        return event

    def emit_update(self, type_: str, obj: Obj, before: Obj) -> Obj | None:
        """Emit `type_` with the top-level fields that changed since `before`, if any."""
        changed = {k: v for k, v in before.items() if not k.startswith("_") and obj.get(k) != v}
        if not changed:
            return None
        return self.emit(type_, obj, changed)


def snapshot(obj: Obj) -> Obj:
    """A copy to diff against after a change (`State.emit_update`)."""
    copied: Obj = public(obj)
    return copied


def paginate(items: list[Obj], params: Params, url: str) -> Obj:
    """Stripe list paging (limit, starting_after, ending_before) over `items`, newest first."""
    limit = params.integer("limit", 10) or 10
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    after = params.text("starting_after")
    before = params.text("ending_before")
    ids = [o["id"] for o in items]
    if after:
        if after not in ids:
            raise no_such("object", after, "starting_after")
        items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return list_object([public(o) for o in page], url, len(items) > limit)
    if before:
        if before not in ids:
            raise no_such("object", before, "ending_before")
        items = items[: ids.index(before)]
        page = items[-limit:]
        return list_object([public(o) for o in page], url, len(items) > limit)
    return list_object([public(o) for o in items[:limit]], url, len(items) > limit)


def newest_first(items: list[Obj]) -> list[Obj]:
    return list(reversed(items))


def list_filter(items: list[Obj], **equal: Any) -> list[Obj]:
    """Keep objects whose fields equal every non-None value given."""
    wanted = {k: v for k, v in equal.items() if v is not None}
    return [o for o in items if all(o.get(k) == v for k, v in wanted.items())]
