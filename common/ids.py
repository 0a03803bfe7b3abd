"""Opaque, sortable, prefixed identifiers (``cust_…``, ``inc_…``)."""

from __future__ import annotations

import os
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
