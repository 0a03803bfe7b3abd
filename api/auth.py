"""Role guards: no or bad key → 401, valid key with the wrong role → 403."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from common.apikeys import Principal

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("auth")
    if not isinstance(principal, Principal):
        raise NotAuthorizedException(
            "a valid API key is required: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="support-billing"'},
        )
    return principal


def allow(*roles: str) -> Guard:
    """A guard admitting ``roles`` (admin is always admitted)."""
    allowed = frozenset({"admin", *roles})

    # A coroutine: Litestar runs synchronous guards in a worker thread (a hop per request).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.role not in allowed:
            raise PermissionDeniedException(
                f"the {principal.role!r} role may not call this operation; "
                f"allowed: {', '.join(sorted(allowed))}"
            )

    return guard


ADMIN = allow()
ANY_ROLE = allow("helpdesk", "finance")
HELPDESK = allow("helpdesk")
FINANCE = allow("finance")
HELPDESK_OR_FINANCE = allow("helpdesk", "finance")
