"""Route table: handlers register a method and a Stripe path with `{name}` placeholders."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripe_emulator.forms import Params
from stripe_emulator.objects import Obj
from stripe_emulator.state import State

Handler = Callable[..., Obj]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


ROUTES: list[Route] = []


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register `handler(state, params, **path_args) -> object` for `method template`."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, re.compile(f"^{regex}$"), handler))
        return handler

    return register


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The matching route with the fewest placeholders (`/customers/search` beats `/{id}`)."""
    best: tuple[Route, dict[str, str]] | None = None
    for candidate in ROUTES:
        if candidate.method != method:
            continue
        found = candidate.pattern.match(path)
        if found and (best is None or len(found.groupdict()) < len(best[1])):
            best = candidate, found.groupdict()
    return best


def call(found: tuple[Route, dict[str, str]], state: State, params: Params) -> Any:
    chosen, args = found
    return chosen.handler(state, params, **args)
