"""Decoding of Stripe's bracket-nested form/query parameters and typed access to them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from stripe_emulator.errors import invalid, missing

_SEGMENT = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    """`items[0][price]` -> ["items", "0", "price"]; `expand[]` -> ["expand", ""]."""
    head, _, rest = key.partition("[")
    if not rest:
        return [key]
    return [head, *_SEGMENT.findall("[" + rest)]


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all indexes into lists, recursively."""
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Build nested dicts/lists from `a[b][0][c]=v` pairs; `x[]=v` appends to a list."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                # `[]` is an append: give it the next free index of its parent.
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return {k: _listify(v) for k, v in root.items()}


def decode_query(query: str) -> dict[str, Any]:
    return decode_pairs(parse_qsl(query, keep_blank_values=True))


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Form bodies as the SDK sends them; JSON bodies for test helpers and control calls."""
    if not body:
        return {}
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError as e:
            raise invalid("Invalid JSON body.") from e
        if not isinstance(data, dict):
            raise invalid("The JSON body must be an object.")
        return data
    return decode_query(body.decode("utf-8"))


class Params:
    """Read-only typed view of decoded parameters; errors name the full param path."""

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}[{key}]" if self.prefix else key

    def has(self, key: str) -> bool:
        return key in self.data

    def is_empty(self, key: str) -> bool:
        """Stripe's way of unsetting a field: `field=""`."""
        return self.data.get(key) == ""

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing(self.name(key))
            return default
        if isinstance(value, dict | list):
            raise invalid(f"Invalid string: {self.name(key)}", param=self.name(key))
        return str(value)

    def req_text(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def choice(self, key: str, options: Iterable[str], default: str | None = None) -> str | None:
        value = self.text(key, default)
        allowed = list(options)
        if value is not None and value not in allowed:
            raise invalid(
                f"Invalid {self.name(key)}: must be one of {', '.join(allowed)}",
                param=self.name(key),
            )
        return value

    def integer(
        self, key: str, default: int | None = None, *, required: bool = False
    ) -> int | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing(self.name(key))
            return default
        if isinstance(value, bool):
            raise invalid(f"Invalid integer: {value}", param=self.name(key))
        if isinstance(value, int):
            return value
        try:
            return int(str(value))
        except ValueError as e:
            raise invalid(f"Invalid integer: {value}", param=self.name(key)) from e

    def req_integer(self, key: str) -> int:
        value = self.integer(key, required=True)
        assert value is not None
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise invalid(f"Invalid boolean: {value}", param=self.name(key))

    def sub(self, key: str) -> Params:
        value = self.data.get(key)
        if value is None or value == "":
            value = {}
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {self.name(key)}", param=self.name(key))
        return Params(value, self.name(key))

    def array(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, dict):
            # An array sent with non-numeric indexes (`lines[a][...]`) stays a dict.
            return list(value.values())
        if not isinstance(value, list):
            return [value]
        return value

    def subs(self, key: str) -> list[Params]:
        out = []
        for i, item in enumerate(self.array(key)):
            if not isinstance(item, dict):
                raise invalid(f"Invalid array: {self.name(key)}", param=self.name(key))
            out.append(Params(item, f"{self.name(key)}[{i}]"))
        return out

    def texts(self, key: str) -> list[str]:
        return [str(v) for v in self.array(key)]

    def metadata(self, key: str = "metadata") -> dict[str, str] | None:
        """The metadata patch: None when absent; `{}` for `metadata=""` (clear all)."""
        value = self.data.get(key)
        if value is None:
            return None
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid("Invalid metadata: must be an object", param=self.name(key))
        return {str(k): "" if v is None else str(v) for k, v in value.items()}


def apply_metadata(current: dict[str, str], patch: dict[str, str] | None) -> None:
    """Merge a metadata patch like Stripe: empty value deletes a key, `metadata=""` clears."""
    if patch is None:
        return
    if not patch:
        current.clear()
    for key, value in patch.items():
        if value == "":
            current.pop(key, None)
        else:
            current[key] = value
