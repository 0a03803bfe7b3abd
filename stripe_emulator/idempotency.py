"""Idempotency keys: the first response to a key is replayed byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stripe_emulator.errors import idempotency_error


@dataclass(frozen=True)
class Stored:
    endpoint: str
    fingerprint: str
    status: int
    body: bytes
    request_id: str


def fingerprint(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


class IdempotencyStore:
    def __init__(self) -> None:
        self.entries: dict[str, Stored] = {}
        self.unsaved: list[str] = []  # keys not yet written to the emulator's `Store`

    def load(self, rows: Iterable[tuple[str, str, str, int, bytes, str]]) -> None:
        for key, endpoint, fingerprint_, status, body, request_id in rows:
            self.entries[key] = Stored(endpoint, fingerprint_, status, body, request_id)

    def take_unsaved(self) -> list[tuple[str, str, str, int, bytes, str]]:
        rows = []
        for key in self.unsaved:
            e = self.entries[key]
            rows.append((key, e.endpoint, e.fingerprint, e.status, e.body, e.request_id))
        self.unsaved = []
        return rows

    def lookup(self, key: str, endpoint: str, params: dict[str, Any]) -> Stored | None:
        """The stored response for `key`; an idempotency_error if it was for another request."""
        stored = self.entries.get(key)
        if stored is None:
            return None
        if stored.endpoint != endpoint:
            raise idempotency_error(
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{stored.endpoint}' vs '{endpoint}'). Try using a key other "
                f"than '{key}' if you meant to execute a different request."
            )
        if stored.fingerprint != fingerprint(params):
            raise idempotency_error(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request."
            )
        return stored

    def save(
        self,
        key: str,
        endpoint: str,
        params: dict[str, Any],
        status: int,
        body: bytes,
        request_id: str,
    ) -> None:
        self.entries[key] = Stored(endpoint, fingerprint(params), status, body, request_id)
        self.unsaved.append(key)

    def clear(self) -> None:
        self.entries = {}
        self.unsaved = []
