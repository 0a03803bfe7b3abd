"""Which webhook targets are refused: non-http(s) URLs, and in production internal hosts.

tests/hostile/test_ssrf_and_secrets.py attacks the same rules with IPv6 forms of IPv4.
"""

from __future__ import annotations

import pytest

from common.errors import InvalidRequest
from webhooks import policy


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
