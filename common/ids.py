"""Opaque, sortable, prefixed identifiers (``cust_…``, ``inc_…``)."""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id: prefix, millisecond timestamp (so ids sort by creation), 80 random bits."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base36(millis, 9)}{_base36(int.from_bytes(os.urandom(10), 'big'), 16)}"


# Request ids only correlate log lines: they need to be unique, not unguessable, and are
# made for every request, so they come from a PRNG seeded once rather than a system call.
_request_ids = random.Random(os.urandom(16))  # noqa: S311 - not a secret


def request_id() -> str:
    """A new request id (``req_`` and 80 random bits in hex)."""
    return f"req_{_request_ids.getrandbits(80):020x}"
