"""Stripe's own types for the pinned API version, as JSON Schema, and the checks built on them.

`reference/stripe.json` is generated from the TypeScript declarations of the npm `stripe`
release made for exactly `stripe.api_version` (`make stripe-reference`). It says, per
endpoint, which parameters Stripe accepts and what it answers, and per event type what
`data.object` is. The emulator validates every request against it (`check_params`,
`check_expand`); tests validate every response and event (`shape_differences`).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from stripe_emulator.errors import StripeError, invalid, missing

REFERENCE = Path(__file__).parent / "reference" / "stripe.json"
Schema = dict[str, Any]


@cache
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text())
    return data


def api_version() -> str:
    return str(reference()["source"]["api_version"])


def definition(name: str) -> Schema:
    found: Schema = reference()["definitions"][name]
    return found


def endpoint_key(method: str, template: str) -> str:
    return method + " " + re.sub(r"{\w*}", "{}", template)


def endpoint(method: str, template: str) -> Schema | None:
    found: Schema | None = reference()["endpoints"].get(endpoint_key(method, template))
    return found


def is_event_type(event_type: str) -> bool:
    return event_type in _event_types()


@cache
def _event_types() -> frozenset[str]:
    return frozenset(reference()["event_types"])


@cache
def _resource_names() -> frozenset[str]:
    return frozenset(ref["$ref"] for refs in reference()["objects"].values() for ref in refs)


def resolve(schema: Schema) -> Schema:
    while "$ref" in schema and len(schema) == 1:
        schema = definition(schema["$ref"])
    if "$ref" in schema:
        return {**definition(schema["$ref"]), **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


# -- requests ---------------------------------------------------------------------------


def check_params(schema: Schema, params: dict[str, Any]) -> None:
    """Raise Stripe's 400 for the first parameter the endpoint does not accept."""
    _param(schema, params, "")


def _name(prefix: str, key: str | int) -> str:
    return f"{prefix}[{key}]" if prefix else str(key)


def _param(schema: Schema, value: Any, name: str) -> None:
    schema = resolve(schema)
    options = schema.get("anyOf")
    if options is not None:
        errors: list[tuple[int, StripeError]] = []
        for option in options:
            try:
                _param(option, value, name)
                return
            except StripeError as e:
                # The most telling failure is the one of the option shaped like the value.
                errors.append((0 if _param_kind(resolve(option)) == _param_kind(value) else 1, e))
        errors.sort(key=lambda pair: pair[0])
        raise errors[0][1]
    if value == "" and not _accepts_empty(schema):
        raise invalid(
            f"You passed an empty string for '{name}'. We assume empty values are an attempt to "
            f"unset a parameter; however '{name}' cannot be unset. You should remove '{name}' "
            "from your request or supply a non-empty value.",
            param=name,
            code="parameter_invalid_empty",
        )
    if "enum" in schema or "const" in schema:
        allowed = schema.get("enum", [schema.get("const")])
        if _form(value) not in [_form(a) for a in allowed]:
            shown = ", ".join(str(a) for a in allowed[:20]) + (", …" if len(allowed) > 20 else "")
            raise invalid(f"Invalid {name}: must be one of {shown}", param=name)
        return
    kind = schema.get("type")
    if kind == "object":
        _param_object(schema, value, name)
    elif kind == "array":
        if isinstance(value, dict) and all(str(k).isdigit() for k in value):
            value = [value[k] for k in sorted(value, key=int)]
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {name}", param=name)
        for i, item in enumerate(value):
            _param(schema["items"], item, _name(name, i))
    elif kind == "number":
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
            raise invalid(f"Invalid integer: {value}", param=name, code="parameter_invalid_integer")
    elif kind == "boolean":
        if _form(value) not in ("true", "false"):
            raise invalid(f"Invalid boolean: {value}", param=name)
    elif kind == "string":
        if isinstance(value, dict | list):
            raise invalid(f"Invalid string: {name}", param=name)
    elif kind == "null" and value is not None and value != "":
        raise invalid(f"Invalid {name}", param=name)


def _param_object(schema: Schema, value: Any, name: str) -> None:
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {name}", param=name)
    properties: dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", False)
    for key, item in value.items():
        if key in properties:
            _param(properties[key], item, _name(name, key))
        elif extra is False:
            full = _name(name, key)
            raise invalid(
                f"Received unknown parameter: {full}", param=full, code="parameter_unknown"
            )
        elif extra is not True and extra:
            _param(extra, item, _name(name, key))
    for key in schema.get("required", []):
        if key not in value:
            raise missing(_name(name, key))


def _accepts_empty(schema: Schema) -> bool:
    # `null` in the SDK's types is sent as an empty string: "unset this".
    return "" in schema.get("enum", []) or schema.get("const") == "" or schema.get("type") == "null"


def _param_kind(value_or_schema: Any) -> str:
    if isinstance(value_or_schema, dict) and (
        "type" in value_or_schema or "enum" in value_or_schema
    ):
        kind = value_or_schema.get("type")
        return "object" if kind == "object" else "array" if kind == "array" else "scalar"
    if isinstance(value_or_schema, dict):
        return "object"
    return "array" if isinstance(value_or_schema, list) else "scalar"


def _form(value: Any) -> str:
    """How a value looks on the wire (form bodies are all text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- expand -----------------------------------------------------------------------------


def check_expand(response: Schema, paths: list[str]) -> None:
    """Raise Stripe's 400 for an `expand[]` path this response cannot expand."""
    for i, path in enumerate(paths):
        if not _expandable(response, path.split(".")):
            raise invalid(f"This property cannot be expanded ({path}).", param=f"expand[{i}]")


def _expandable(schema: Schema, parts: list[str]) -> bool:
    schema = resolve(schema)
    if "anyOf" in schema:
        return any(_expandable(o, parts) for o in schema["anyOf"] if o.get("type") != "string")
    if schema.get("type") == "array":
        return _expandable(schema["items"], parts)
    properties = schema.get("properties", {})
    head, rest = parts[0], parts[1:]
    if head not in properties:
        return False
    field = resolve(properties[head])
    target = expansion_target(field, optional=head not in schema.get("required", []))
    if not rest:
        return target is not None
    return _expandable(target or field, rest)


def _an_object(option: Schema) -> bool:
    """A resource, or a union of resources (a customer's `default_source`: CustomerSource)."""
    if "x-unchecked" in option or option.get("$ref") in _resource_names():
        return True
    union: list[Schema] = definition(option["$ref"]).get("anyOf", []) if "$ref" in option else []
    return bool(union) and all(_an_object(o) for o in union)


def expansion_target(field: Schema, *, optional: bool) -> Schema | None:
    """What an expandable (`string | Object`) or includable (optional list) field becomes."""
    options: list[Schema] = field.get("anyOf", [])
    if any(o.get("type") == "string" for o in options):
        for option in options:
            if _an_object(option):
                return option
        return None
    if optional and field.get("properties", {}).get("object", {}).get("const") == "list":
        return field
    if optional and "x-unchecked" in field:
        return field
    return None


# -- shapes -----------------------------------------------------------------------------


def shape_differences(schema: Schema, value: Any, path: str = "") -> list[str]:
    """Every way `value` differs from what Stripe sends for `schema` (empty: none)."""
    out: list[str] = []
    _shape(schema, value, path or "$", out)
    return out


def event_differences(event: dict[str, Any]) -> list[str]:
    return shape_differences({"$ref": "EventBase", "x-event": True}, event, "event")


def _shape(schema: Schema, value: Any, path: str, out: list[str]) -> None:
    if schema.get("x-event"):
        _event(value, path, out)
        base = resolve(schema)
        # `data.object` was checked against its own type just now.
        properties = {**base["properties"], "data": {}}
        schema = {**base, "properties": properties, "x-event": False}
    schema = resolve(schema)
    if "x-partial" in schema:
        _partial(resolve(schema["x-partial"]), value, path, out)
        return
    if "x-unchecked" in schema:
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object ({schema['x-unchecked']}), got {value!r}")
        return
    if "anyOf" in schema:
        best: list[str] | None = None
        for option in schema["anyOf"]:
            found: list[str] = []
            _shape(option, value, path, found)
            if not found:
                return
            if _same_kind(resolve(option), value) and (best is None or len(found) < len(best)):
                best = found
        out.extend(best or [f"{path}: {_short(value)} matches none of {_kinds(schema)}"])
        return
    if "enum" in schema or "const" in schema:
        allowed = schema.get("enum", [schema.get("const")])
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            out.append(f"{path}: {_short(value)} is not one of {allowed}")
        return
    kind = schema.get("type")
    if kind is None:
        return
    if not _same_kind(schema, value):
        out.append(f"{path}: expected {kind}, got {_short(value)}")
        return
    if kind == "array":
        for i, item in enumerate(value):
            _shape(schema["items"], item, f"{path}[{i}]", out)
    elif kind == "object":
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", False)
        for key, item in value.items():
            if key in properties:
                _shape(properties[key], item, f"{path}.{key}", out)
            elif extra is False:
                out.append(f"{path}.{key}: not in Stripe's type (Stripe does not send it)")
            elif isinstance(extra, dict):
                _shape(extra, item, f"{path}.{key}", out)
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}.{key}: missing (Stripe always sends it)")


def _event(event: Any, path: str, out: list[str]) -> None:
    if not isinstance(event, dict):
        return
    event_type = str(event.get("type"))
    if not is_event_type(event_type):
        out.append(f"{path}.type: {event_type!r} is not a Stripe event type")
        return
    schema = reference()["events"].get(event_type)
    data = event.get("data")
    if schema is None or not isinstance(data, dict):
        out.append(f"{path}: no reference for the object of {event_type!r}")
        return
    obj_path = f"{path}({event_type}).data.object"
    _shape(schema, data.get("object"), obj_path, out)
    previous = data.get("previous_attributes")
    if previous is not None:
        _partial(resolve(schema), previous, f"{path}({event_type}).data.previous_attributes", out)


def _partial(schema: Schema, value: Any, path: str, out: list[str]) -> None:
    if not isinstance(value, dict):
        out.append(f"{path}: expected an object, got {_short(value)}")
        return
    properties = schema.get("properties", {})
    for key, item in value.items():
        if key not in properties:
            out.append(f"{path}.{key}: not in Stripe's type (Stripe does not send it)")
        else:
            _shape(properties[key], item, f"{path}.{key}", out)


def _same_kind(schema: Schema, value: Any) -> bool:
    kind = schema.get("type")
    if kind is None:
        if "enum" in schema or "const" in schema:
            return value in schema.get("enum", [schema.get("const")])
        if "x-unchecked" in schema:
            return isinstance(value, dict)
        return True
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }.get(kind, True)


def _kinds(schema: Schema) -> str:
    names = []
    for option in schema["anyOf"]:
        option = resolve(option) if "$ref" in option else option
        names.append(str(option.get("type") or option.get("enum") or option.get("const")))
    return " | ".join(names)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
