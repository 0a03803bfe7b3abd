"""The ``Support-Billing-Signature`` of a delivery: HMAC-SHA256 of ``"<unix time>.<body>"``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from common.clock import utcnow

SIGNATURE_HEADER: Final = "Support-Billing-Signature"
DEFAULT_TOLERANCE: Final = 300


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Support-Billing-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: int | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its time is within ``tolerance`` s.

    Receivers pass the raw request body, exactly as received. Several ``v1`` entries are
    accepted (any one matching suffices) so that a secret can be rolled without downtime.
    """
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = int(utcnow().timestamp()) if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, raw)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def new_secret() -> str:
    """A fresh endpoint secret (192 random bits)."""
    return "whsec_" + secrets.token_hex(24)
