"""The finance page's session cookie, its CSRF token and the same-origin rule for its forms.

The page (``/finance``) is signed into with a finance (or admin) API key sent once in a
POSTed form; the answer is a random cookie secret (``sb_session``: HttpOnly,
SameSite=Strict, Path=/finance, Secure unless served over plain http on a loopback host).
Every POST of the page must come from the page itself (its ``Origin``, or ``Referer`` when
a browser sends no Origin, names this host) and, once signed in, carry the session's CSRF
token. The session opens the read-only finance views and nothing else: the ``/v1`` API
takes Bearer keys only.
"""

from __future__ import annotations

import hmac
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from api.auth import FINANCE, ROLES_OPT
from common import sessions

COOKIE: Final = "sb_session"
COOKIE_PATH: Final = "/finance"
CSRF_FIELD: Final = "csrf_token"
PAGE_ROLES: Final[frozenset[str]] = FINANCE[ROLES_OPT]
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})


Session = sessions.Session
open_session = sessions.open_session


class SignInRequired(NotAuthorizedException):
    """No live session: a page answers with the way to the sign-in form."""


class CrossSiteRequest(PermissionDeniedException):
    """A form POST that did not come from this page, or without the session's token."""


def _host(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("host", "").lower()


def cookie_secure(request: Request[Any, Any, Any]) -> bool:
    """Secure everywhere except plain http on a loopback address (a developer's machine)."""
    hostname = urlsplit(f"//{_host(request)}").hostname or ""
    return not (request.url.scheme == "http" and hostname in _LOOPBACK)


def session_cookie(request: Request[Any, Any, Any], secret: str) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=secret,
        path=COOKIE_PATH,
        max_age=sessions.SESSION_HOURS * 3600,
        httponly=True,
        secure=cookie_secure(request),
        samesite="strict",
    )


def cleared_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return Cookie(
        key=COOKIE,
        value="",
        path=COOKIE_PATH,
        max_age=0,
        httponly=True,
        secure=cookie_secure(request),
        samesite="strict",
    )


def check_same_origin(request: Request[Any, Any, Any]) -> None:
    """Refuse a POST whose Origin (else Referer) is not this host: a cross-site form."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        raise CrossSiteRequest("this form must be sent from the finance page (no Origin)")
    if urlsplit(claimed).netloc.lower() != _host(request):
        raise CrossSiteRequest("this form must be sent from the finance page (foreign Origin)")


def check_csrf(session: sessions.Session, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(presented, session.csrf_token):
        raise CrossSiteRequest("the form's CSRF token is missing or not this session's")


async def find_live(secret: str) -> sessions.Session | None:
    """The live session of a cookie's secret, if it opens the finance page."""
    found = await sessions.find_session(secret)
    return found if found is not None and found.principal.role in PAGE_ROLES else None


async def current_session(request: Request[Any, Any, Any]) -> sessions.Session:
    """The request's live session, else SignInRequired (the page answers with the form)."""
    secret = request.cookies.get(COOKIE)
    found = await find_live(secret) if secret else None
    if found is None:
        raise SignInRequired("sign in to the finance page first")
    # The access log names the key behind the session, as it does for Bearer requests.
    request.scope["auth"] = found.principal
    return found


async def end(secret: str) -> None:
    if secret:
        await sessions.close_session(secret)
