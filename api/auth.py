"""Who may call what: each operation names its roles in ``opt``; AuthMiddleware enforces them.

No or bad key → 401, valid key with the wrong role → 403. This is authorization in the
middleware rather than in Litestar guards on purpose: Litestar copies the route handler
for every guard call, which cost the hot entitlement read about 7 % of its CPU time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from common.apikeys import Principal

ROLES_OPT: Final = "roles"
PUBLIC_OPT: Final = "public"

Access = dict[str, Any]


def roles(*names: str) -> Access:
    """Route option admitting ``names`` (admin is always admitted): ``@get(..., opt=HELPDESK)``."""
    return {ROLES_OPT: frozenset({"admin", *names})}


ADMIN: Final = roles()
ANY_ROLE: Final = roles("helpdesk", "finance")
HELPDESK: Final = roles("helpdesk")
FINANCE: Final = roles("finance")
HELPDESK_OR_FINANCE: Final = roles("helpdesk", "finance")
# Said out loud on a /v1 operation that takes no API key (Stripe's signed webhook).
PUBLIC: Final[Access] = {PUBLIC_OPT: True}


def allowed_roles(opt: Mapping[str, Any]) -> frozenset[str] | None:
    """The roles an operation admits, or None when it takes no API key."""
    found: frozenset[str] | None = opt.get(ROLES_OPT)
    return found


def authorize(principal: Principal | None, allowed: frozenset[str]) -> Principal:
    """The caller, when its key may call an operation admitting ``allowed``."""
    if principal is None:
        raise NotAuthorizedException(
            "a valid API key is required: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="support-billing"'},
        )
    if principal.role not in allowed:
        raise PermissionDeniedException(
            f"the {principal.role!r} role may not call this operation; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return principal
