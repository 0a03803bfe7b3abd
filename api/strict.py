"""Strict typing of request bodies and query parameters, before Litestar's lax conversion.

Litestar converts parameters with ``msgspec.convert(..., strict=False)``, which turns
``"1"``, ``1.0`` and ``1e2`` into integers and epoch numbers into times. The contract says
otherwise (API.md: integers are integers, money is never a float, times are RFC 3339), so
this middleware decodes the JSON body with ``strict=True`` into the operation's own type and
checks each query value's lexical form first; what passes here converts identically later.

The rule for statuses: **400** when the request cannot be parsed or does not match the
operation's schema (wrong type, unknown or missing field, out of range, bad pattern);
**422** when it is well-formed but the service refuses it (unknown plan, a time in the
future, an illegal state change) — those come from the domain as ``InvalidRequest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from types import NoneType
from typing import Any, Final, cast
from urllib.parse import unquote_plus

import msgspec
import msgspec.structs
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.params import ParameterKwarg
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.typing import FieldDefinition

from api.errors import PROBLEM_BASE, PROBLEM_JSON, FieldError, Problem
from common.logging import request_id_var
from common.schemas import TimeOutOfRange, check_time

_INTEGER: Final = re.compile(r"^-?[0-9]{1,19}$")
_RFC3339: Final = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_BOOLEAN: Final = frozenset({"true", "false"})
_PATH: Final = re.compile(r"\s*-\s*at\s*`\$\.?(?P<path>[^`]*)`\s*$")
_NAMED: Final = re.compile(r"(?:required|unknown) field `([^`]+)`|for field `([^`]+)`")


@dataclass(frozen=True)
class _Plan:
    body: Any  # a msgspec Decoder of the operation's body type, or None
    body_optional: bool
    query: dict[str, str]  # query name -> "int" | "datetime" | "bool" | "other"
    body_type: Any = None


def _scalar_kind(field: FieldDefinition) -> str:
    types = [t.annotation for t in field.inner_types] if field.is_optional else [field.annotation]
    types = [t for t in types if t is not NoneType]
    if len(types) != 1:
        return "other"
    kind = types[0]
    if kind is bool:
        return "bool"
    if kind is int:
        return "int"
    if kind is datetime:
        return "datetime"
    return "other"


def _plan(handler: HTTPRouteHandler) -> _Plan:
    body: Any = None
    body_type: Any = None
    optional = False
    query: dict[str, str] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name == "data":
            body = msgspec.json.Decoder(field.annotation, strict=True)
            body_type = field.annotation
            optional = field.has_default or field.is_optional
            continue
        definition = field.kwarg_definition
        if isinstance(definition, ParameterKwarg):
            if definition.header or definition.cookie:
                continue
            query[definition.query or definition.name or name] = _scalar_kind(field)
        elif definition is None and _scalar_kind(field) != "other":
            query[name] = _scalar_kind(field)  # a bare scalar parameter is a query parameter
    return _Plan(body=body, body_optional=optional, query=query, body_type=body_type)


def _error(field: str, message: str, source: str) -> dict[str, str]:
    return {"key": field, "message": message, "source": source}


def _query_errors(plan: _Plan, query_string: bytes, path_params: dict[str, Any]) -> list[Any]:
    errors: list[Any] = []
    seen: set[str] = set()
    for pair in query_string.decode("latin-1").split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = unquote_plus(raw_name, encoding="utf-8")
        kind = plan.query.get(name)
        if kind is None or name in path_params:
            continue
        value = unquote_plus(raw_value, encoding="utf-8")
        if name in seen:
            errors.append(_error(name, "given more than once", "query"))
            continue
        seen.add(name)
        if kind == "int" and not _INTEGER.match(value):
            errors.append(
                _error(name, f"must be an integer in decimal digits, not {value!r}", "query")
            )
        elif kind == "bool" and value not in _BOOLEAN:
            errors.append(_error(name, "must be true or false", "query"))
        elif kind == "datetime":
            if not _RFC3339.match(value):
                errors.append(_error(name, "must be an RFC 3339 time with an offset", "query"))
                continue
            try:
                at = msgspec.json.decode(msgspec.json.encode(value), type=datetime)
                check_time(at, name)
            except (msgspec.ValidationError, TimeOutOfRange) as e:
                errors.append(_error(name, str(e), "query"))
    return errors


def _every_bad_field(body_type: Any, raw: bytes) -> list[dict[str, str]]:
    """Each bad field of a JSON object body, one error apiece (msgspec stops at the first).

    Every field is decoded on its own with its own type, as the whole body would be;
    unknown and missing fields are named too. Empty when the body is not an object of a
    Struct (the first error then stands alone).
    """
    if not (isinstance(body_type, type) and issubclass(body_type, msgspec.Struct)):
        return []
    try:
        given = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return []
    if not isinstance(given, dict):
        return []
    fields = msgspec.structs.fields(body_type)
    errors: list[dict[str, str]] = []
    if body_type.__struct_config__.forbid_unknown_fields:
        known = {f.encode_name for f in fields}
        errors += [
            _error(key, f"Object contains unknown field `{key}`", "body")
            for key in given
            if key not in known
        ]
    for field in fields:
        if field.encode_name not in given:
            if field.required:
                errors.append(_error(field.encode_name, "Object missing required field", "body"))
            continue
        try:
            msgspec.json.decode(
                msgspec.json.encode(given[field.encode_name]), type=field.type, strict=True
            )
        except msgspec.ValidationError as e:
            found = _body_error(e)
            leaf = found["key"].lstrip(".")
            found["key"] = (
                field.encode_name if leaf in ("body", "") else f"{field.encode_name}.{leaf}"
            )
            errors.append(found)
    return errors


def _body_error(exc: msgspec.MsgspecError) -> dict[str, str]:
    message = str(exc)
    match = _PATH.search(message)
    path = match.group("path") if match else ""
    text = message[: match.start()] if match else message
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    named = _NAMED.search(text)
    if named:
        leaf = named.group(1) or named.group(2)
        path = f"{path}.{leaf}" if path else leaf
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        text = f"the body is not valid JSON: {text}"
    return _error(path or "body", text.strip(), "body")


class StrictInputMiddleware(ASGIMiddleware):
    """Refuse (400) a body or query value that only a lax conversion would accept."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self._plans: dict[int, _Plan] = {}

    def plan(self, handler: HTTPRouteHandler) -> _Plan:
        found = self._plans.get(id(handler))
        if found is None:
            found = self._plans[id(handler)] = _plan(handler)
        return found

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        plan = self.plan(cast(HTTPRouteHandler, scope["route_handler"]))
        errors = _query_errors(plan, scope.get("query_string", b""), scope.get("path_params", {}))
        if plan.body is None:
            if errors:
                await _refuse(scope, send, errors)
                return
            await next_app(scope, receive, send)
            return
        # The input boundary hands the whole body on as one message (api.boundary).
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body or not plan.body_optional:
            try:
                plan.body.decode(body)
            except msgspec.MsgspecError as e:
                if not body:
                    errors.append(_error("body", "a JSON body is required", "body"))
                elif isinstance(e, msgspec.ValidationError):
                    errors += _every_bad_field(plan.body_type, body) or [_body_error(e)]
                else:
                    errors.append(_body_error(e))
        if errors:
            await _refuse(scope, send, errors)
            return
        await next_app(scope, _replay(message, receive), send)


async def _refuse(scope: Scope, send: Send, errors: list[dict[str, str]]) -> None:
    # Answered here, not raised: the idempotency middleware above keeps this answer like
    # any other final one, so a retry with the same key replays it.
    fields = [FieldError(field=e["key"], message=e["message"], source=e["source"]) for e in errors]
    named = ", ".join(sorted({f.field for f in fields}))
    body = msgspec.json.encode(
        Problem(
            type=PROBLEM_BASE + "validation-error",
            title="Invalid request",
            status=400,
            detail=f"the request is malformed or has invalid fields: {named}",
            instance=scope["path"],
            request_id=request_id_var.get(),
            errors=fields,
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _replay(first: Any, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
