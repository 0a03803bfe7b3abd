"""The signature of a delivery: what a receiver computes, and every way it must refuse."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks import signing

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


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=60),
    body=st.binary(max_size=300),
    signed_at=st.integers(min_value=0, max_value=2**32),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_any_body_verifies_with_its_secret_inside_the_tolerance(
    secret: str, body: bytes, signed_at: int, skew: int
) -> None:
    header = signing.sign(secret, signed_at, body)
    assert signing.verify_signature(secret, header, body, now=signed_at + skew)
    assert not signing.verify_signature(secret + "x", header, body, now=signed_at)
    assert not signing.verify_signature(secret, header, body + b"x", now=signed_at)
    late = signed_at + (301 if skew >= 0 else -301)
    assert not signing.verify_signature(secret, header, body, now=late)
