"""What the OpenAPI document says about errors and headers, added in one place to every operation.

Litestar documents each operation's success and a generic 400; the service also answers
problem+json 401/403/429 (auth, rate limit), 404, 409, 413/415 (the input boundary), 422
and 503, and puts ``X-Request-Id`` on every response. Clients and schemathesis check the
answers against this document, so it lists them all.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import msgspec.inspect
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.openapi.spec import RequestBody as RequestBodySpec

from api.errors import PROBLEM_JSON
from common.schemas import TIME_RANGE, RequestBody

# Years 1970 to 2099, the range requests may carry (common.schemas); JSON Schema's
# date-time format alone cannot bound a time.
TIME_PATTERN: Final = r"^(19[7-9][0-9]|20[0-9][0-9])-"

PROBLEM_SCHEMA: Final = "Problem"

_DESCRIPTIONS: Final = {
    400: "The request does not match this operation's schema (problem+json, `errors[]` names "
    "each bad field); also a path, query or body that is not UTF-8 or holds a NUL character "
    "(PostgreSQL cannot store it), or JSON nested deeper than 32 levels",
    401: "No valid API key",
    402: "Stripe declined the payment or it needs the customer's action",
    403: "The key's role may not call this operation",
    404: "No such resource",
    409: "Conflicts with the current state, or the first request with this Idempotency-Key "
    "is still in progress",
    413: "The body exceeds 1 MiB",
    415: "A body must be `application/json` (UTF-8)",
    422: "Well-formed but refused by the service (a business rule, an Idempotency-Key reused "
    "with another request)",
    429: "Too many requests for this API key; see Retry-After",
    503: "A dependency (PostgreSQL, Redis, Stripe) is unavailable; retry later",
}


def _string(description: str) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description=description)


REQUEST_ID: Final = _string("The request's id (the client's sane X-Request-Id, or a new one)")
_EXTRA_HEADERS: Final = {
    401: {"WWW-Authenticate": _string('`Bearer realm="support-billing"`')},
    429: {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER), description="Seconds to wait"
        )
    },
    503: {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER), description="Seconds to wait"
        )
    },
}


def _problem_schema() -> Schema:
    text = Schema(type=OpenAPIType.STRING)
    optional_text = Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)])
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        properties={"field": text, "message": text, "source": text},
        required=["field", "message"],
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        description="RFC 9457 problem details",
        properties={
            "type": text,
            "title": text,
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": text,
            "instance": optional_text,
            "request_id": optional_text,
            "errors": Schema(type=OpenAPIType.ARRAY, items=field_error),
        },
        required=["type", "title", "status", "detail"],
    )


def _problem(status: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=_DESCRIPTIONS[status],
        headers={"X-Request-Id": REQUEST_ID, **_EXTRA_HEADERS.get(status, {})},
        content={
            PROBLEM_JSON: OpenAPIMediaType(
                schema=Reference(ref=f"#/components/schemas/{PROBLEM_SCHEMA}")
            )
        },
    )


def problem_statuses(method: str, operation: Operation, opt: dict[str, Any]) -> list[int]:
    """The error statuses an operation may answer with."""
    from api.auth import PUBLIC_OPT, allowed_roles

    statuses = [400, 503]
    if allowed_roles(opt) is not None:
        statuses += [401, 403, 429]
    has_path_params = any(
        getattr(p, "param_in", None) == "path" for p in operation.parameters or []
    )
    if has_path_params or method != "get" or opt.get(PUBLIC_OPT):
        statuses.append(404)
    if method != "get":
        statuses += [409, 413, 415]
    statuses.append(422)
    statuses += opt.get("problems", [])
    return sorted(set(statuses))


def install() -> None:
    """Document problems and headers whenever Litestar builds an app's OpenAPI document.

    Litestar builds it lazily, on the first request for it, and offers no hook for that
    moment; wrapping its builder keeps app creation cheap (tests make hundreds of apps).
    """
    if getattr(OpenAPIPlugin._build_openapi, "_documents_problems", False):
        return
    build = OpenAPIPlugin._build_openapi

    def build_documented(plugin: OpenAPIPlugin) -> OpenAPI:
        schema = build(plugin)
        document(plugin.app, schema)
        return schema

    build_documented._documents_problems = True  # type: ignore[attr-defined]
    OpenAPIPlugin._build_openapi = build_documented  # type: ignore[assignment,method-assign]


def _request_structs() -> list[type[RequestBody]]:
    found: list[type[RequestBody]] = []
    todo: list[type[RequestBody]] = list(RequestBody.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _literal_keys(kind: Any) -> list[str] | None:
    if isinstance(kind, msgspec.inspect.UnionType):
        keyed = [_literal_keys(t) for t in kind.types]
        return next((k for k in keyed if k), None)
    if isinstance(kind, msgspec.inspect.DictType) and isinstance(
        kind.key_type, msgspec.inspect.LiteralType
    ):
        return [str(v) for v in kind.key_type.values]
    return None


def _request_schemas(structs: list[type[RequestBody]]) -> dict[str, Any]:
    """msgspec's own JSON Schema of the request bodies: exactly what strict decoding accepts.

    Litestar's rendering drops constraints inside lists and on optional fields; msgspec's
    keeps them. A dict keyed by a Literal (``targets``, ``business_hours``) also gets the
    allowed keys, which msgspec does not write.
    """
    _, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    for struct in structs:
        info = msgspec.inspect.type_info(struct)
        schema = components.get(struct.__name__)
        if not isinstance(info, msgspec.inspect.StructType) or schema is None:
            continue
        for field in info.fields:
            keys = _literal_keys(field.type)
            if not keys:
                continue
            prop = schema["properties"][field.encode_name]
            for option in prop.get("anyOf", [prop]):
                if option.get("type") == "object":
                    option["propertyNames"] = {"enum": keys}
    return components


def _tighten(schema: Any, seen: set[int]) -> None:
    """Every RFC 3339 time the schema names gets the accepted years as a pattern."""
    if id(schema) in seen:
        return
    seen.add(id(schema))
    if isinstance(schema, Schema):
        if schema.format == OpenAPIFormat.DATE_TIME and schema.pattern is None:
            schema.pattern = TIME_PATTERN
            schema.description = schema.description or f"RFC 3339 with an offset, {TIME_RANGE}"
        for value in vars(schema).values():
            _tighten(value, seen)
    elif isinstance(schema, dict) and schema.get("format") == "date-time":
        schema.setdefault("pattern", TIME_PATTERN)
        for item in schema.values():
            _tighten(item, seen)
    elif hasattr(schema, "__dataclass_fields__"):  # Parameter, RequestBody, MediaType…
        for value in vars(schema).values():
            _tighten(value, seen)
    elif isinstance(schema, list | tuple):
        for item in schema:
            _tighten(item, seen)
    elif isinstance(schema, dict):
        for item in schema.values():
            _tighten(item, seen)


def document(app: Litestar, schema: OpenAPI) -> None:
    """Add the problem responses and response headers to every operation of ``app``."""
    assert schema.components is not None
    components: dict[str, Any] = {
        **(schema.components.schemas or {}),
        PROBLEM_SCHEMA: _problem_schema(),
    }
    structs = [s for s in _request_structs() if s.__name__ in components]
    components.update(_request_schemas(structs))
    schema.components.schemas = components
    for component in components.values():
        _tighten(component, set())
    handlers = {
        handler.operation_id: handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
    }
    options = {operation_id: handler.opt for operation_id, handler in handlers.items()}
    for item in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            _tighten(operation.parameters, set())
            responses = dict(operation.responses or {})
            for response in responses.values():
                if isinstance(response, OpenAPIResponse):
                    response.headers = {**(response.headers or {}), "X-Request-Id": REQUEST_ID}
            opt = options.get(operation.operation_id, {})
            handler = handlers.get(operation.operation_id)
            data = handler.parsed_fn_signature.parameters.get("data") if handler else None
            body = operation.request_body
            if data is not None and data.has_default and isinstance(body, RequestBodySpec):
                # `data: JSONBody[X | None] = None`: the body may be left out.
                body.required = False
            for status in problem_statuses(method, operation, opt):
                if status == 400:  # replaces Litestar's generic (non-problem) 400
                    responses["400"] = _problem(400)
                else:  # an operation's own answer for a status (/ready's 503) stays
                    responses.setdefault(str(status), _problem(status))
            operation.responses = responses
