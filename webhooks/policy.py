"""Which URLs a webhook may target: absolute http(s), and in production only public hosts.

A target is checked twice: its URL when the endpoint is created (``check_url``), and what
its host resolves to at each delivery (``refused_target``), since DNS may point inward later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Final
from urllib.parse import urlsplit

from webhooks.exceptions import InvalidEndpoint

MAX_URL_LENGTH: Final = 2048
# Bounds the lookup of a delivery's host; the attempt's lease (webhooks.delivery) outlasts
# it together with the request's own timeout.
RESOLVE_TIMEOUT_SECONDS: Final = 10.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Hosts written as bare numbers (``2130706433``, ``0x7f.1``) resolve to IPs yet are no IP literal.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)$")

# IPv6 prefixes that carry or translate an IPv4 address (RFC 4291, 6052, 8215, 3056):
# the IPv4 address is what a packet to them reaches, so it decides.
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
# IANA special-purpose blocks that are not globally reachable, listed here as well as in
# Python's is_global (which lags the registries, and differs between Python versions).
_SPECIAL_V4: Final = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (its two anycast services are no receivers)
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
)
_SPECIAL_V6: Final = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",
        "fe80::/10",
    )
)


def internal_ip(address: IPAddress) -> bool:
    """True unless ``address`` is globally routable, also through an embedded IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return internal_ip(address.ipv4_mapped)
        if address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL or address.teredo is not None:
            # Deprecated, site-local translation, or a tunnel to wherever the client says.
            return True
        if address in _NAT64:
            return internal_ip(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return internal_ip(address.sixtofour)
        if any(address in network for network in _SPECIAL_V6):
            return True
    elif any(address in network for network in _SPECIAL_V4):
        return True
    return not address.is_global or address.is_multicast


def is_internal_host(host: str) -> bool:
    """Loopback, private, link-local or otherwise non-public: refused as a target in production."""
    host = host.lower().rstrip(".")
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return internal_ip(ipaddress.ip_address(host))
    except ValueError:
        pass
    return bool(_NUMERIC_HOST.match(host.rsplit(".", 1)[-1]))


def check_url(url: str, *, production: bool) -> str:
    """The endpoint URL if acceptable: absolute http(s); in production https to a public host."""
    if url != url.strip() or len(url) > MAX_URL_LENGTH:
        raise InvalidEndpoint(
            f"url must be an absolute URL of at most {MAX_URL_LENGTH} characters", field="url"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidEndpoint("url has an invalid port", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpoint("url must be an absolute http or https URL", field="url")
    if parts.username or parts.password:
        raise InvalidEndpoint("url must not carry credentials", field="url")
    if production:
        if parts.scheme != "https":
            raise InvalidEndpoint("url must use https", field="url")
        if is_internal_host(parts.hostname):
            raise InvalidEndpoint(
                f"url must point at a public host; {parts.hostname} is loopback, private "
                "or link-local",
                field="url",
            )
    return url


async def refused_target(url: str) -> str | None:
    """Why ``url`` may not be called from production (its host resolves inward), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except TimeoutError:
        return f"cannot resolve {host}: timed out"
    except OSError as e:
        return f"cannot resolve {host}: {e}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if internal_ip(address):
            return f"refused: {host} resolves to non-public address {address}"
    return None
