"""Stripe objects (in memory, written through to a `Store` when there is one), the event log,
and the request being handled."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import stripe

from stripe_emulator import reference
from stripe_emulator.clock import Clock
from stripe_emulator.errors import invalid, no_such
from stripe_emulator.forms import Params
from stripe_emulator.ids import new_id
from stripe_emulator.objects import Obj, build, list_object, public
from stripe_emulator.store import Store

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

    def __init__(
        self, webhook_url: str | None = None, webhook_secret: str = "", store: Store | None = None
    ) -> None:
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
        # Write-through: objects a request may have changed, written by `commit`.
        self.store = store
        self.seq = 0
        self.order: dict[str, int] = {}
        self.touched: dict[str, Obj] = {}
        self.removed: set[str] = set()
        self.written: dict[str, bytes] = {}  # id -> digest of the body last written
        if store is not None:
            self._load(store)

    def reset(self) -> None:
        self.clock.reset()
        self.request = RequestInfo()
        self.objects = {}
        self.by_id = {}
        self.lookup_keys = {}
        self.wake_at = None
        self.seq = 0
        self.order, self.touched, self.removed, self.written = {}, {}, set(), {}
        if self.store is not None:
            self.store.reset()

    # -- persistence -----------------------------------------------------------------

    def _load(self, store: Store) -> None:
        for seq, obj in store.objects():
            self.objects.setdefault(obj["object"], {})[obj["id"]] = obj
            self.by_id[obj["id"]] = obj
            self.order[obj["id"]] = seq
            self.written[obj["id"]] = _digest(msgspec.json.encode(obj))
        self.seq = max(self.order.values(), default=0)
        clock = json.loads(store.meta("clock") or "{}")
        self.clock.offset = int(clock.get("offset", 0))
        self.clock.frozen = clock.get("frozen")
        self.lookup_keys = json.loads(store.meta("lookup_keys") or "{}")

    def commit(self, idempotency: list[tuple[str, str, str, int, bytes, str]]) -> int:
        """Write what this request touched; returns the number of objects written."""
        touched, removed = self.touched, self.removed
        self.touched, self.removed = {}, set()
        if self.store is None:
            return 0
        upserts = []
        for object_id, obj in touched.items():
            if object_id in removed:
                continue
            body = msgspec.json.encode(obj)
            digest = _digest(body)
            if self.written.get(object_id) != digest:
                upserts.append((object_id, str(obj["object"]), self.order[object_id], body))
                self.written[object_id] = digest
        deletes = [i for i in removed if self.written.pop(i, None) is not None]
        clock = {"offset": self.clock.offset, "frozen": self.clock.frozen}
        meta = {"clock": json.dumps(clock), "lookup_keys": json.dumps(self.lookup_keys)}
        self.store.commit(upserts, deletes, meta, idempotency)
        return len(upserts) + len(deletes)

    def touch(self, obj: Obj) -> None:
        """Mark `obj` as possibly changed by the running request."""
        if self.store is not None:
            self.touched[obj["id"]] = obj

    def now(self) -> int:
        return self.clock.now()

    # -- objects ---------------------------------------------------------------------

    def add(self, obj: Obj) -> Obj:
        self.wake_at = None
        self.objects.setdefault(obj["object"], {})[obj["id"]] = obj
        self.by_id[obj["id"]] = obj
        if obj["id"] not in self.order:
            self.seq += 1
            self.order[obj["id"]] = self.seq
        if self.store is not None:
            self.removed.discard(obj["id"])
            self.touched[obj["id"]] = obj
        return obj

    def remove(self, obj: Obj) -> None:
        self.objects.get(obj["object"], {}).pop(obj["id"], None)
        self.by_id.pop(obj["id"], None)
        self.order.pop(obj["id"], None)
        if self.store is not None:
            self.removed.add(obj["id"])

    def find(self, object_id: str) -> Obj | None:
        found = self.by_id.get(object_id)
        if found is not None and self.store is not None:
            self.touched[object_id] = found
        return found

    def get(self, kind: str, object_id: str | None, param: str = "id") -> Obj:
        obj = self.objects.get(kind, {}).get(object_id or "")
        if obj is None:
            raise no_such(_LABELS.get(kind, kind), object_id or "", param)
        if self.store is not None:
            self.touched[obj["id"]] = obj
        return obj

    def scan(self, kind: str) -> list[Obj]:
        """Oldest first, for reading only: what the caller changes it must `touch`."""
        return list(self.objects.get(kind, {}).values())

    def all(self, kind: str) -> list[Obj]:
        """Oldest first (insertion order). The caller may change any of them, except events
        (written once: their data is a snapshot)."""
        found = list(self.objects.get(kind, {}).values())
        if kind != "event" and self.store is not None:
            self.touched.update((o["id"], o) for o in found)
        return found

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


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def snapshot(obj: Obj) -> Obj:
    """A copy to diff against after a change (`State.emit_update`)."""
    copied: Obj = public(obj)
    return copied


def paginate(items: list[Obj], params: Params, url: str) -> Obj:
    """Stripe list paging (limit, starting_after, ending_before) over `items`, newest first."""
    limit = params.integer("limit", 10)
    if limit is None or not 1 <= limit <= 100:
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


CREATED_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda t, b: t > b,
    "gte": lambda t, b: t >= b,
    "lt": lambda t, b: t < b,
    "lte": lambda t, b: t <= b,
}


def created_filter(items: list[Obj], params: Params) -> list[Obj]:
    """Stripe's `created` list filter: an exact timestamp or `created[gt|gte|lt|lte]`."""
    created = params.raw("created")
    if isinstance(created, dict):
        bounds = params.sub("created")
        for op, keep in CREATED_BOUNDS.items():
            bound = bounds.integer(op)
            if bound is not None:
                items = [o for o in items if keep(int(o["created"]), bound)]
    elif created is not None:
        moment = params.integer("created")
        items = [o for o in items if o["created"] == moment]
    return items


def list_filter(items: list[Obj], **equal: Any) -> list[Obj]:
    """Keep objects whose fields equal every non-None value given."""
    wanted = {k: v for k, v in equal.items() if v is not None}
    return [o for o in items if all(o.get(k) == v for k, v in wanted.items())]
