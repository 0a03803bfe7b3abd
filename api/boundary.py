"""The input boundary: every request crosses it before routing, middleware or handlers.

It refuses, each with a problem+json naming the problem and before anything else runs:
a body over the size limit (413; streamed, so no more than the limit is ever held, with or
without ``Idempotency-Key``), a non-JSON body (415), a path, query or JSON body that is not
UTF-8 or carries a NUL character (400: PostgreSQL cannot store NUL in text), and JSON nested
deeper than the depth limit (400: decoders and ``jsonb`` recurse). A body that passes is
handed on as one message, so no later layer reads the socket again.

Routes that must see the body exactly as sent (Stripe's signed webhook) keep the size limit
only: their signature is the authority on the body, and what they store is bytes, not text.
The finance page's forms (``form_body_paths``) are HTML forms: their body is
``application/x-www-form-urlencoded``, held to the same UTF-8 and NUL rules as a query.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from api.middleware import send_problem

MAX_BODY_BYTES: Final = 1_048_576
MAX_JSON_DEPTH: Final = 32
MAX_QUERY_BYTES: Final = 8192

_BRACKETS = re.compile(rb"[\\\"\[\]{}]")
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_BACKSLASH, _QUOTE = 0x5C, 0x22


class Refusal(Exception):
    """Why the boundary refuses a request: status, problem slug, title, detail, field."""

    def __init__(self, status: int, slug: str, title: str, detail: str, field: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.field = (
            status,
            slug,
            title,
            detail,
            field,
        )


def _text(raw: bytes, field: str, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(
            400, "invalid-encoding", "Invalid encoding", f"the {where} is not valid UTF-8", field
        ) from None
    if "\x00" in text:
        raise Refusal(
            400, "nul-character", "NUL character", f"the {where} contains a NUL character", field
        )
    return text


def check_path(raw_path: bytes) -> None:
    """The percent-decoded path is UTF-8 without NUL."""
    _text(unquote_to_bytes(raw_path), "path", "path")


def check_query(query: bytes) -> None:
    """Every percent-decoded name and value of the query string is UTF-8 without NUL."""
    if len(query) > MAX_QUERY_BYTES:
        raise Refusal(
            400,
            "query-too-long",
            "Query string too long",
            f"the query string is longer than {MAX_QUERY_BYTES} bytes",
            "query",
        )
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        label = _text(unquote_to_bytes(name.replace(b"+", b" ")), "query", "query string")
        _text(unquote_to_bytes(value.replace(b"+", b" ")), label or "query", f"query {label!r}")


def check_form(body: bytes) -> None:
    """Every percent-decoded name and value of a urlencoded form is UTF-8 without NUL."""
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        label = _text(unquote_to_bytes(name.replace(b"+", b" ")), "body", "form")
        _text(unquote_to_bytes(value.replace(b"+", b" ")), label or "body", f"form field {label!r}")


def check_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """The body is UTF-8, its strings hold no NUL (``\\u0000``) and it nests at most max_depth."""
    _text(body, "body", "body")
    # Most bodies have too few brackets to be deep and no escape that could be a NUL.
    if b"\\u0000" not in body and body.count(b"[") + body.count(b"{") <= max_depth:
        return
    depth = 0
    in_string = False
    skip = -1
    # Visits only quotes, backslashes and brackets: linear, whatever the input.
    for match in _BRACKETS.finditer(body):
        at = match.start()
        if at == skip:
            continue
        char = body[at]
        if in_string:
            if char == _BACKSLASH:
                skip = at + 1  # the escaped character
                if body.startswith(b"u0000", at + 1):
                    raise Refusal(
                        400,
                        "nul-character",
                        "NUL character",
                        "a string in the body contains a NUL character (\\u0000)",
                        "body",
                    )
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPEN:
            depth += 1
            if depth > max_depth:
                raise Refusal(
                    400,
                    "too-deeply-nested",
                    "JSON too deeply nested",
                    f"the body nests arrays and objects deeper than {max_depth} levels",
                    "body",
                )
        elif char in _CLOSE:
            depth -= 1


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _is_json(content_type: bytes) -> bool:
    media, _, params = content_type.decode("latin-1").partition(";")
    media = media.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        return False
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_form(content_type: bytes) -> bool:
    media, _, params = content_type.decode("latin-1").partition(";")
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        return False
    return media.strip().lower() == "application/x-www-form-urlencoded"


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        "payload-too-large",
        "Payload too large",
        f"the request body exceeds {limit} bytes",
        "body",
    )


class InputBoundary:
    """Pure ASGI: wraps the whole Litestar handler, so it runs before routing and middleware."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
        raw_body_paths: Collection[str] = (),
        form_body_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.raw_body_paths = frozenset(raw_body_paths)
        self.form_body_paths = frozenset(form_body_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        try:
            check_path(scope.get("raw_path") or scope["path"].encode())
            check_query(scope.get("query_string", b""))
            body = await self._read_body(scope, receive)
            if body is not None and body:
                self._check_body(scope, body)
        except Refusal as refusal:
            await send_problem(
                send,
                refusal.status,
                refusal.slug,
                refusal.title,
                refusal.detail,
                field=refusal.field,
            )
            return
        if body is None:  # the client went away while sending
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise Refusal(
                    400,
                    "bad-request",
                    "Malformed request",
                    "Content-Length must be a number of bytes",
                    "Content-Length",
                )
            if int(declared) > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Any = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                # Stop reading: what is left on the socket is never buffered.
                raise _too_large(self.max_body_bytes)
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_body(self, scope: Scope, body: bytes) -> None:
        if scope["path"] in self.raw_body_paths:
            return
        content_type = _header(scope, b"content-type")
        if scope["path"] in self.form_body_paths:
            if content_type is None or not _is_form(content_type):
                raise Refusal(
                    415,
                    "unsupported-media-type",
                    "Unsupported media type",
                    "this form's body must be 'application/x-www-form-urlencoded' (UTF-8)",
                    "Content-Type",
                )
            check_form(body)
            return
        if content_type is None or not _is_json(content_type):
            raise Refusal(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "a request body must be JSON: send 'Content-Type: application/json' (UTF-8)",
                "Content-Type",
            )
        check_json(body, self.max_json_depth)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
