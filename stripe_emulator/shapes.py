"""Shape checking (tests): every response and event compared with Stripe's types as they go out."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stripe_emulator import reference
from stripe_emulator.objects import Obj


class ShapeLog:
    """What was checked and every difference found, since the last `clear`."""

    def __init__(self) -> None:
        self.responses: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.differences: list[dict[str, str]] = []

    def response(self, method: str, template: str, body: Any) -> None:
        found = reference.endpoint(method, template)
        if found is None:
            return  # an emulator-only test helper: Stripe has no type for it
        key = reference.endpoint_key(method, template)
        self.responses[key] += 1
        for difference in reference.shape_differences(found["response"], body, key):
            self.differences.append({"where": key, "difference": difference})

    def event(self, event: Obj) -> None:
        self.events[str(event["type"])] += 1
        for difference in reference.event_differences(event):
            self.differences.append({"where": str(event["type"]), "difference": difference})

    def clear(self) -> None:
        self.responses.clear()
        self.events.clear()
        self.differences = []

    def to_json(self) -> dict[str, Any]:
        return {
            "responses": dict(sorted(self.responses.items())),
            "events": dict(sorted(self.events.items())),
            "differences": self.differences,
        }
