"""Pure parts of webhooks: signatures, the retry schedule, which hosts count as internal."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from common.errors import InvalidRequest
from webhooks import delivery, events, policy, signing

SECRET = "whsec_0123456789abcdef"
BODY = b'{"id":"evt_1","type":"sla.breached","created":1795338000,"data":{}}'


def test_signature_header_is_hmac_of_timestamp_dot_body() -> None:
    header = signing.sign(SECRET, 1795338000, BODY)
    expected = hmac.new(SECRET.encode(), b"1795338000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1795338000,v1={expected}"
    assert signing.verify_signature(SECRET, header, BODY, now=1795338000)
    assert signing.verify_signature(SECRET, header, BODY.decode(), now=1795338000 + 300)


@pytest.mark.parametrize(
    ("secret", "header_time", "body", "now"),
    [
        ("whsec_wrong", 1795338000, BODY, 1795338000),  # another endpoint's secret
        (SECRET, 1795338000, BODY + b" ", 1795338000),  # body altered
        (SECRET, 1795338000, BODY, 1795338301),  # too old: a replay
        (SECRET, 1795338000, BODY, 1795337699),  # from the future
    ],
)
def test_signature_is_refused_when_anything_differs(
    secret: str, header_time: int, body: bytes, now: int
) -> None:
    header = signing.sign(SECRET, header_time, BODY)
    assert not signing.verify_signature(secret, header, body, now=now)


@pytest.mark.parametrize(
    "header", ["", "garbage", "t=abc,v1=00", "v1=00", "t=1795338000", "t=1795338000,v1=zz"]
)
def test_malformed_signature_header_is_refused(header: str) -> None:
    assert not signing.verify_signature(SECRET, header, BODY, now=1795338000)


def test_any_matching_v1_entry_is_accepted() -> None:
    header = signing.sign(SECRET, 1795338000, BODY)
    rolled = f"{header.split(',')[0]},v1={'0' * 64},{header.split(',')[1]}"
    assert signing.verify_signature(SECRET, rolled, BODY, now=1795338000)


def test_retry_delay_doubles_from_30_seconds_up_to_an_hour() -> None:
    delays = [delivery.retry_delay(n).total_seconds() for n in range(1, 12)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
    assert delivery.retry_delay(1, 1.1) == timedelta(seconds=33)
    assert delivery.retry_delay(8, 1.1) == timedelta(hours=1)
    assert delivery.retry_delay(10_000) == timedelta(hours=1)


def test_jitter_stays_within_ten_percent() -> None:
    assert all(0.9 <= delivery.jitter() <= 1.1 for _ in range(1000))


@pytest.mark.parametrize(
    ("host", "internal"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("a.localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::ffff:10.0.0.1", True),
        ("10.0.0.1", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("192.168.0.1", True),
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("0.0.0.0", True),  # noqa: S104 - a host under test, nothing binds to it
        ("2130706433", True),
        ("0x7f000001", True),
        ("172.32.0.1", False),
        ("8.8.8.8", False),
        ("hooks.example.com", False),
        ("2001:4860:4860::8888", False),
    ],
)
def test_internal_hosts(host: str, internal: bool) -> None:
    assert policy.is_internal_host(host) is internal


def test_development_allows_loopback_http_but_not_other_schemes() -> None:
    assert policy.check_url("http://127.0.0.1:8080/h", production=False)
    with pytest.raises(InvalidRequest, match="http or https") as caught:
        policy.check_url("ftp://127.0.0.1/h", production=False)
    assert caught.value.field == "url"
    with pytest.raises(InvalidRequest, match="https"):
        policy.check_url("http://hooks.example.com", production=True)


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
