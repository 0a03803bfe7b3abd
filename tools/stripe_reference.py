"""Build the emulator's shape reference from the TypeScript declarations of Stripe's npm package.

`stripe` on npm ships `.d.ts` files generated from Stripe's OpenAPI spec for exactly one
API version (`cjs/apiVersion.js`). This script reads them and writes the JSON Schema the
emulator checks requests and tests check responses and events against:

    make stripe-reference                     # npm pack stripe@<version> and regenerate
    python tools/stripe_reference.py PACKAGE_DIR [--out FILE]

Only what the emulator serves is kept: every endpoint whose method and path match one of
its `/v1` routes (params and response), every event type it may send, and the types those
reach. A resource outside that set (an `Account`, a `TestClock`, …) becomes an unchecked
object: the emulator only ever sends it as an id or null.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "stripe_emulator" / "reference" / "stripe.json"

# -- a tokenizer and parser for the subset of TypeScript the generated declarations use --

_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>/\*.*?\*/|//[^\n]*)|(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"""|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_$][\w$]*)|(?P<arrow>=>)|(?P<punct>[{}()<>\[\];:,|&?=.*@-])""",
    re.S,
)


def tokenize(text: str) -> list[str]:
    out = []
    pos = 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise SyntaxError(f"cannot read {text[pos : pos + 40]!r}")
        pos = found.end()
        if found.lastgroup not in ("space", "comment"):
            out.append(found.group())
    return out


Type = dict[str, Any]  # a parsed type expression


@dataclass
class Interface:
    name: str  # qualified: "Checkout.Session.CustomerDetails"
    scope: list[str]  # where names inside it resolve from
    file: str
    members: dict[str, tuple[bool, Type]] = field(default_factory=dict)  # name -> (optional, type)
    index: Type | None = None  # `[key: string]: T`
    bases: list[Type] = field(default_factory=list)
    params: list[str] = field(default_factory=list)  # generic parameters


@dataclass
class Alias:
    name: str
    scope: list[str]
    file: str
    type: Type
    params: list[str] = field(default_factory=list)


@dataclass
class Method:
    name: str
    params_type: Type | None
    returns: Type
    scope: list[str]
    file: str


class Parser:
    def __init__(self, tokens: list[str], file: str, prefix: list[str]) -> None:
        self.t = tokens
        self.i = 0
        self.file = file
        self.prefix = prefix
        self.imports: dict[str, list[str]] = {}
        self.decls: dict[str, Interface | Alias] = {}
        self.classes: dict[str, dict[str, Method]] = {}

    def peek(self, k: int = 0) -> str:
        return self.t[self.i + k] if self.i + k < len(self.t) else ""

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if expected is not None and tok != expected:
            raise SyntaxError(f"{self.file}: expected {expected!r}, got {tok!r} at {self.i}")
        self.i += 1
        return tok

    def skip_statement(self) -> None:
        depth = 0
        while self.i < len(self.t):
            tok = self.take()
            if tok in "{([":
                depth += 1
            elif tok in "})]":
                depth -= 1
                if depth == 0 and tok == "}" and self.peek() != ";":
                    return
            elif tok == ";" and depth == 0:
                return

    # statements

    def module(self) -> None:
        self.statements(self.prefix, top=True)

    def statements(self, scope: list[str], top: bool = False) -> None:
        while self.i < len(self.t) and self.peek() != "}":
            self.statement(scope, top)

    def statement(self, scope: list[str], top: bool) -> None:
        tok = self.peek()
        if tok == "import" and top:
            self.import_()
            return
        while self.peek() in ("export", "declare"):
            self.take()
        tok = self.peek()
        if tok == "interface":
            self.interface(scope)
        elif tok == "namespace":
            self.take()
            name = self.take()
            self.take("{")
            self.statements([*scope, name])
            self.take("}")
        elif tok == "type":
            self.alias(scope)
        elif tok == "class":
            self.class_(scope)
        else:
            self.skip_statement()

    def import_(self) -> None:
        self.take("import")
        names: list[tuple[str, str]] = []
        if self.peek() == "*":
            self.take()
            self.take("as")
            names.append(("*", self.take()))
        elif self.peek() == "{":
            self.take()
            while self.peek() != "}":
                name = self.take()
                local = name
                if self.peek() == "as":
                    self.take()
                    local = self.take()
                names.append((name, local))
                if self.peek() == ",":
                    self.take()
            self.take("}")
        else:
            self.skip_statement()
            return
        self.take("from")
        source = self.take().strip("'\"")
        self.take(";")
        target = _module_prefix(self.file, source)
        if target is None:
            return
        for name, local in names:
            if name == "*" or (source.endswith("index.js") and name == _last(target)):
                self.imports[local] = target
            else:
                self.imports[local] = [*target, name]

    def generics(self) -> list[str]:
        params = []
        if self.peek() == "<":
            self.take()
            while self.peek() != ">":
                params.append(self.take())
                if self.peek() == "extends":
                    self.take()
                    self.type_expr()
                if self.peek() == "=":
                    self.take()
                    self.type_expr()
                if self.peek() == ",":
                    self.take()
            self.take(">")
        return params

    def interface(self, scope: list[str]) -> None:
        self.take("interface")
        name = self.take()
        decl = Interface(".".join([*scope, name]), [*scope, name], self.file)
        decl.params = self.generics()
        if self.peek() == "extends":
            self.take()
            while True:
                decl.bases.append(self.type_expr())
                if self.peek() != ",":
                    break
                self.take()
        self.take("{")
        self.members(decl)
        self.take("}")
        self.decls[decl.name] = decl

    def members(self, decl: Interface) -> None:
        while self.peek() != "}":
            if self.peek() == "readonly":
                self.take()
            if self.peek() == "[":
                self.take()
                self.take()  # key name
                self.take(":")
                self.type_expr()
                self.take("]")
                self.take(":")
                decl.index = self.type_expr()
            else:
                name = self.take().strip("'\"")
                optional = self.peek() == "?"
                if optional:
                    self.take()
                if self.peek() == "(":
                    self.skip_balanced()
                    self.take(":")
                    self.type_expr()
                else:
                    self.take(":")
                    decl.members[name] = (optional, self.type_expr())
            if self.peek() in (";", ","):
                self.take()

    def skip_balanced(self) -> None:
        opening = self.take()
        closing = {"(": ")", "{": "}", "[": "]", "<": ">"}[opening]
        depth = 1
        while depth:
            tok = self.take()
            if tok == opening:
                depth += 1
            elif tok == closing:
                depth -= 1

    def alias(self, scope: list[str]) -> None:
        self.take("type")
        name = self.take()
        params = self.generics()
        self.take("=")
        decl = Alias(".".join([*scope, name]), list(scope), self.file, self.type_expr(), params)
        self.take(";")
        self.decls[decl.name] = decl

    def class_(self, scope: list[str]) -> None:
        self.take("class")
        name = self.take()
        self.generics()
        while self.peek() != "{":
            self.take()
        self.take("{")
        methods: dict[str, Method] = {}
        while self.peek() != "}":
            start = self.i
            while self.peek() in ("private", "readonly", "static", "protected", "public"):
                self.take()
            member = self.take()
            if self.peek() == "(" or self.peek() == "<":
                if self.peek() == "<":
                    self.skip_balanced()
                params_type = self.method_params()
                if self.peek() == ":":  # a constructor has no return type
                    self.take(":")
                    returns = self.type_expr()
                    methods[member] = Method(member, params_type, returns, list(scope), self.file)
            else:
                self.i = start
                self.skip_statement()
                continue
            if self.peek() == ";":
                self.take()
        self.take("}")
        self.classes[name] = methods

    def method_params(self) -> Type | None:
        self.take("(")
        found = None
        while self.peek() != ")":
            name = self.take()
            if self.peek() == "?":
                self.take()
            self.take(":")
            kind = self.type_expr()
            if name == "params":
                found = kind
            if self.peek() == ",":
                self.take()
        self.take(")")
        return found

    # type expressions

    def type_expr(self) -> Type:
        if self.peek() == "|":
            self.take()
        options = [self.intersection()]
        while self.peek() == "|":
            self.take()
            options.append(self.intersection())
        return options[0] if len(options) == 1 else {"union": options}

    def intersection(self) -> Type:
        parts = [self.postfix()]
        while self.peek() == "&":
            self.take()
            parts.append(self.postfix())
        return parts[0] if len(parts) == 1 else {"intersection": parts}

    def postfix(self) -> Type:
        kind = self.primary()
        while self.peek() == "[" and self.peek(1) == "]":
            self.take()
            self.take()
            kind = {"array": kind}
        return kind

    def primary(self) -> Type:
        tok = self.peek()
        if tok == "(":
            self.take()
            inner = self.type_expr()
            self.take(")")
            if self.peek() == "=>":
                self.take()
                self.type_expr()
                return {"keyword": "any"}
            return inner
        if tok == "{":
            self.take()
            decl = Interface("", [], self.file)
            self.members(decl)
            self.take("}")
            return {"object": decl}
        if tok.startswith(("'", '"')):
            self.take()
            return {"literal": json.loads('"' + tok[1:-1].replace('"', '\\"') + '"')}
        if re.fullmatch(r"-?\d+(\.\d+)?", tok):
            self.take()
            return {"literal": float(tok) if "." in tok else int(tok)}
        if tok == "-":
            self.take()
            return {"literal": -int(self.take())}
        if tok == "typeof":
            self.take()
            self.take()
            return {"keyword": "any"}
        name = [self.take()]
        while self.peek() == "." and self.peek(1) not in ("", "."):
            self.take()
            name.append(self.take())
        args = []
        if self.peek() == "<":
            self.take()
            while self.peek() != ">":
                args.append(self.type_expr())
                if self.peek() == ",":
                    self.take()
            self.take(">")
        if len(name) == 1 and name[0] in _KEYWORDS:
            return {"keyword": name[0]}
        return {"ref": name, "args": args}


_KEYWORDS = {
    "string",
    "number",
    "boolean",
    "null",
    "void",
    "any",
    "unknown",
    "true",
    "false",
    "undefined",
    "never",
    "object",
}


def _last(parts: list[str]) -> str:
    return parts[-1] if parts else ""


def _module_prefix(file: str, source: str) -> list[str] | None:
    """`./Checkout/index.js` seen from resources/Events.d.ts -> ["Checkout"]."""
    if not source.startswith("."):
        return None
    base = Path(file).parent
    target = (base / source).resolve()
    rel = _relative(target)
    if rel is None:
        return None
    parts = list(rel.parts)
    if parts[-1] == "index.js":
        return parts[:-1]
    return parts[:-1]


_RESOURCES: Path = Path()


def _relative(target: Path) -> Path | None:
    try:
        return target.relative_to(_RESOURCES)
    except ValueError:
        if target.parent == _RESOURCES.parent:
            return Path(target.name)  # shared.js, lib.js
        return None


# -- the type registry and the JSON Schema it produces ------------------------------------


class Registry:
    def __init__(self) -> None:
        self.decls: dict[str, Interface | Alias] = {}
        self.imports: dict[str, dict[str, list[str]]] = {}
        self.classes: dict[str, dict[str, Method]] = {}  # "Checkout.SessionResource" -> methods
        self.requests: dict[str, tuple[str, str]] = {}  # "Checkout.SessionResource.create"

    def add(self, parser: Parser) -> None:
        for name, decl in parser.decls.items():
            self.decls.setdefault(name, decl)
        self.imports[parser.file] = parser.imports
        for name, methods in parser.classes.items():
            self.classes[".".join([*parser.prefix, name])] = methods

    def resolve(self, ref: list[str], scope: list[str], file: str) -> str | None:
        for i in range(len(scope), -1, -1):
            candidate = ".".join([*scope[:i], *ref])
            if candidate in self.decls:
                return candidate
        imported = self.imports.get(file, {}).get(ref[0])
        if imported is not None:
            candidate = ".".join([*imported, *ref[1:]])
            if candidate in self.decls:
                return candidate
        candidate = ".".join(ref)
        return candidate if candidate in self.decls else None


def is_resource(decl: Interface | Alias | None) -> bool:
    """A top-level API object: an interface with an `object: '<literal>'` member."""
    if not isinstance(decl, Interface):
        return False
    obj = decl.members.get("object")
    return obj is not None and "literal" in obj[1] and "id" in decl.members


class SchemaBuilder:
    """Turns declarations into JSON Schema definitions, reached from the chosen roots."""

    def __init__(self, registry: Registry, roots: set[str]) -> None:
        self.registry = registry
        self.roots = roots  # resource declarations that are checked in full
        self.definitions: dict[str, Any] = {}
        self.unchecked: set[str] = set()
        self.unresolved: set[str] = set()

    def define(self, name: str) -> str:
        if name not in self.definitions:
            self.definitions[name] = None  # reserve (recursion)
            decl = self.registry.decls[name]
            if isinstance(decl, Interface):
                self.definitions[name] = self.interface(decl, {})
            else:
                self.definitions[name] = self.convert(decl.type, decl.scope, decl.file, {})
        return name

    def interface(self, decl: Interface, bindings: dict[str, Any]) -> Any:
        members = dict(self.inherited(decl))
        members.update({k: (v, decl.scope, decl.file) for k, v in decl.members.items()})
        properties: dict[str, Any] = {}
        required = []
        for name, ((optional, kind), scope, file) in members.items():
            if kind.get("keyword") in ("void", "never", "undefined"):
                continue  # `deleted?: void`: never sent
            properties[name] = self.convert(kind, scope, file, bindings)
            if not optional:
                required.append(name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        schema["additionalProperties"] = (
            self.convert(decl.index, decl.scope, decl.file, bindings) if decl.index else False
        )
        return schema

    def inherited(self, decl: Interface) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for base in decl.bases:
            target = self.registry.resolve(base["ref"], decl.scope[:-1], decl.file)
            parent = self.registry.decls.get(target or "")
            if isinstance(parent, Interface):
                out.update(self.inherited(parent))
                out.update({k: (v, parent.scope, parent.file) for k, v in parent.members.items()})
        return out

    def convert(self, kind: Type, scope: list[str], file: str, bindings: dict[str, Any]) -> Any:
        if "keyword" in kind:
            return {
                "string": {"type": "string"},
                "number": {"type": "number"},
                "boolean": {"type": "boolean"},
                "null": {"type": "null"},
                "true": {"const": True},
                "false": {"const": False},
            }.get(kind["keyword"], {})
        if "literal" in kind:
            return {"const": kind["literal"]}
        if "array" in kind:
            return {"type": "array", "items": self.convert(kind["array"], scope, file, bindings)}
        if "object" in kind:
            inline: Interface = kind["object"]
            inline.scope, inline.file = scope, file
            return self.interface(inline, bindings)
        if "intersection" in kind:
            parts = kind["intersection"]
            # `string & Record<never, never>` (OtherString) and friends: the first part.
            return self.convert(parts[0], scope, file, bindings)
        if "union" in kind:
            return self.union(kind["union"], scope, file, bindings)
        return self.reference(kind, scope, file, bindings)

    def union(self, options: list[Type], scope: list[str], file: str, bindings: Any) -> Any:
        literals = [o["literal"] for o in options if "literal" in o]
        rest = [o for o in options if "literal" not in o]
        # `'a' | 'b' | OtherString` is an open enum: checked against the values it lists.
        rest = [o for o in rest if o.get("ref") != ["OtherString"]]
        out = []
        if literals:
            out.append({"enum": literals})
        out.extend(self.convert(o, scope, file, bindings) for o in rest)
        flat = []
        for schema in out:
            flat.extend(schema["anyOf"] if set(schema) == {"anyOf"} else [schema])
        return flat[0] if len(flat) == 1 else {"anyOf": flat}

    def reference(self, kind: Type, scope: list[str], file: str, bindings: Any) -> Any:
        ref, args = kind["ref"], kind.get("args", [])
        head = ".".join(ref)
        if head in bindings:
            return bindings[head]
        converted = [self.convert(a, scope, file, bindings) for a in args]
        if head in ("Array", "ReadonlyArray"):
            return {"type": "array", "items": converted[0]}
        if head in ("ApiList", "ApiSearchResult"):
            return _list_schema(converted[0], search=head == "ApiSearchResult")
        if head in ("Response", "Promise"):
            return converted[0]
        if head in ("ApiListPromise", "ApiSearchResultPromise"):
            return _list_schema(converted[0], search=head == "ApiSearchResultPromise")
        if head == "Partial":
            return {"x-partial": converted[0]}
        if head == "Record":
            return {"type": "object", "additionalProperties": converted[1]}
        if head in ("Decimal", "OtherString"):
            return {"type": "string"}
        name = self.registry.resolve(ref, scope, file)
        if name is None:
            self.unresolved.add(head)
            return {}
        if name == "Event":
            # The union of every `…Event`: an event whose `data.object` is checked against
            # the type its `type` names (`events` below).
            return {"$ref": self.define("EventBase"), "x-event": True}
        decl = self.registry.decls[name]
        if decl.params:
            values = dict(zip(decl.params, converted, strict=False))
            if isinstance(decl, Alias):
                return self.convert(decl.type, decl.scope, decl.file, values)
            return self.interface(decl, values)
        if is_resource(decl) and name not in self.roots:
            self.unchecked.add(name)
            return {"type": "object", "x-unchecked": name}
        return {"$ref": self.define(name)}


def _list_schema(item: Any, *, search: bool = False) -> Any:
    properties = {
        "object": {"const": "search_result" if search else "list"},
        "data": {"type": "array", "items": item},
        "has_more": {"type": "boolean"},
        "url": {"type": "string"},
    }
    if search:
        properties["next_page"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
        properties["total_count"] = {"type": "number"}
    return {
        "type": "object",
        "properties": properties,
        "required": ["object", "data", "has_more", "url"],
        "additionalProperties": False,
    }


# -- reading the package --------------------------------------------------------------------

_REQUEST = re.compile(
    r"(?P<method>\w+)\([^)]*\)\s*\{\s*return this\._makeRequest\('(?P<verb>\w+)',\s*"
    r"[`'](?P<path>[^`']+)[`']"
)


def read_package(package: Path) -> tuple[Registry, str]:
    global _RESOURCES
    cjs = package / "cjs"
    _RESOURCES = (cjs / "resources").resolve()
    registry = Registry()
    # The v2 API (thin events, accounts v2) shares nothing with what the emulator serves.
    files = [cjs / "shared.d.ts"]
    files += [p for p in sorted(_RESOURCES.rglob("*.d.ts")) if "V2" not in p.parts]
    for path in files:
        rel = _relative(path.resolve())
        prefix = list(rel.parts[:-1]) if rel is not None else []
        parser = Parser(tokenize(path.read_text()), str(path.resolve()), prefix)
        parser.module()
        registry.add(parser)
        js = path.with_name(path.name.removesuffix(".d.ts") + ".js")
        if js.exists() and prefix is not None:
            for found in _REQUEST.finditer(js.read_text()):
                for cls in parser.classes:
                    key = ".".join([*prefix, cls, found["method"]])
                    path_template = re.sub(r"\$\{[^}]*\}", "{}", found["path"])
                    registry.requests.setdefault(key, (found["verb"], path_template))
    version = re.search(r"ApiVersion = '([^']+)'", (cjs / "apiVersion.js").read_text())
    if version is None:
        raise SystemExit("no ApiVersion in cjs/apiVersion.js")
    return registry, version.group(1)


def emulator_routes() -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT))
    from stripe_emulator import emulator  # noqa: F401 - registers the routes
    from stripe_emulator.routing import ROUTES

    return [(r.method, r.template) for r in ROUTES]


def normalized(template: str) -> str:
    return re.sub(r"\{\w*\}", "{}", template)


def build(package: Path) -> dict[str, Any]:
    registry, api_version = read_package(package)
    wanted = {(m, normalized(t)) for m, t in emulator_routes()}
    endpoints: dict[str, Method] = {}
    for key, (verb, path) in sorted(registry.requests.items()):
        if (verb, path) not in wanted:
            continue
        cls, _, method_name = key.rpartition(".")
        method = registry.classes[cls].get(method_name)
        if method is not None:
            endpoints.setdefault(f"{verb} {path}", method)
    events = _event_types(registry)
    roots = {
        name
        for name, decl in registry.decls.items()
        if is_resource(decl) and _object_name(decl) in EMULATED_OBJECTS
    }
    builder = SchemaBuilder(registry, roots)
    endpoint_out: dict[str, Any] = {}
    for key, method in sorted(endpoints.items()):
        params = (
            builder.convert(method.params_type, method.scope, method.file, {})
            if method.params_type
            else {"type": "object", "properties": {}, "additionalProperties": False}
        )
        endpoint_out[key] = {
            "params": params,
            "response": builder.convert(method.returns, method.scope, method.file, {}),
        }
    event_out = {}
    for event_type, object_type in sorted(events.items()):
        name = registry.resolve(object_type["ref"], [], _EVENTS_FILE[0])
        if name is not None and name in roots:
            event_out[event_type] = {"$ref": builder.define(name)}
    objects = {}
    for name in sorted(roots):
        decl = registry.decls[name]
        assert isinstance(decl, Interface)
        objects.setdefault(_object_name(decl), []).append({"$ref": builder.define(name)})
    reference = {
        "source": {
            "npm_package": "stripe",
            "npm_version": json.loads((package / "package.json").read_text())["version"],
            "api_version": api_version,
            "generated_by": "tools/stripe_reference.py",
        },
        "event_types": sorted(_all_event_types(registry)),
        "events": event_out,
        "objects": objects,
        "endpoints": endpoint_out,
        "definitions": builder.definitions,
        "unchecked": sorted(builder.unchecked),
        "unresolved": sorted(builder.unresolved),
    }
    return _deduplicated(reference)


def _deduplicated(reference: dict[str, Any]) -> dict[str, Any]:
    """Identical definitions (`…CreateParams.X` = `…UpdateParams.X`) become one `$ref`."""
    while True:
        definitions = reference["definitions"]
        first: dict[str, str] = {}
        alias: dict[str, str] = {}
        for name in sorted(definitions, key=lambda n: (n.count("."), len(n), n)):
            text = json.dumps(definitions[name], sort_keys=True)
            if text in first:
                alias[name] = first[text]
            else:
                first[text] = name
        if not alias:
            reference["definitions"] = dict(sorted(definitions.items()))
            return reference
        for name in alias:
            del definitions[name]
        reference = _rename(reference, alias)


def _rename(node: Any, alias: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: alias.get(v, v) if k == "$ref" else _rename(v, alias) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, alias) for v in node]
    return node


# Object types the emulator creates; everything else it sends as an id or null.
EMULATED_OBJECTS = {
    "billing_portal.session",
    "charge",
    "checkout.session",
    "credit_note",
    "credit_note_line_item",
    "customer",
    "customer_balance_transaction",
    "event",
    "invoice",
    "invoice_payment",
    "invoiceitem",
    "item",
    "line_item",
    "payment_intent",
    "payment_method",
    "plan",
    "price",
    "product",
    "refund",
    "setup_intent",
    "subscription",
    "subscription_item",
    "webhook_endpoint",
}

_EVENTS_FILE: list[str] = []


def _object_name(decl: Interface) -> str:
    return str(decl.members["object"][1]["literal"])


def _all_event_types(registry: Registry) -> list[str]:
    alias = registry.decls["Event.Type"]
    assert isinstance(alias, Alias)
    return [o["literal"] for o in alias.type["union"] if "literal" in o]


def _event_types(registry: Registry) -> dict[str, Type]:
    """`customer.updated` -> the type of its `data.object`, from the `…Event` interfaces."""
    out = {}
    for decl in registry.decls.values():
        if not (isinstance(decl, Interface) and decl.name.endswith("Event")):
            continue
        type_member = decl.members.get("type")
        data = registry.decls.get(f"{decl.name}.Data")
        if type_member is None or not isinstance(data, Interface):
            continue
        obj = data.members.get("object")
        if obj is not None and "ref" in obj[1]:
            out[type_member[1]["literal"]] = obj[1]
            _EVENTS_FILE[:] = [data.file]
    return out


def _dump(reference: dict[str, Any]) -> str:
    """One line per endpoint, event and definition: diffs of a regeneration stay readable."""
    lines = ["{"]
    sections = list(reference.items())
    for n, (section, value) in enumerate(sections):
        comma = "," if n < len(sections) - 1 else ""
        if isinstance(value, dict) and section != "source":
            lines.append(f"{json.dumps(section)}: {{")
            items = list(value.items())
            for m, (key, item) in enumerate(items):
                inner = "," if m < len(items) - 1 else ""
                lines.append(
                    f"  {json.dumps(key)}: {json.dumps(item, separators=(',', ':'))}{inner}"
                )
            lines.append("}" + comma)
        else:
            lines.append(f"{json.dumps(section)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="the unpacked npm package (its package/ dir)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    reference = build(args.package)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dump(reference))
    size = args.out.stat().st_size
    print(
        f"{args.out}: stripe@{reference['source']['npm_version']} "
        f"({reference['source']['api_version']}), {len(reference['endpoints'])} endpoints, "
        f"{len(reference['events'])} events, {len(reference['definitions'])} definitions, "
        f"{size // 1024} KiB; unresolved: {reference['unresolved'] or 'none'}"
    )


if __name__ == "__main__":
    main()
