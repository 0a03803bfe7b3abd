"""Which event types an endpoint subscribes to, and which events reach it."""

from __future__ import annotations

import pytest

from common.errors import InvalidRequest
from webhooks import events


def test_events_are_deduplicated_and_the_wildcard_stands_alone() -> None:
    assert events.normalize_events(["sla.warning", "sla.warning", "sla.breached"]) == [
        "sla.warning",
        "sla.breached",
    ]
    assert events.normalize_events(["sla.warning", "*"]) == ["*"]
    assert events.subscribed(["*"], "fast_track.purchased")
    assert not events.subscribed(["sla.warning"], "sla.breached")
    with pytest.raises(InvalidRequest, match=r"sla\.nope") as caught:
        events.normalize_events(["sla.nope"])
    assert caught.value.field == "events"
