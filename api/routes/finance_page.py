"""The finance review page (``/finance``): server-rendered HTML over the finance services.

Two sections: invoices and credits (``/finance``, quick: keyset pages of the mirror) and
revenue and SLA (``/finance/reports``, the year's reports, slower). Signed into with a
finance or admin key exchanged for a session cookie (``api.sessions``); plain forms and
links, so all of it works with JavaScript off (the revenue chart is SVG drawn here). Every
asset is served by the service itself. Not in the OpenAPI document: pages for people, not
operations for programs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from markupsafe import Markup

from api import sessions
from api.charts import Bar, bar_chart
from api.sessions import COOKIE, CrossSiteRequest, SignInRequired
from billing import schemas
from billing import service as billing
from common import apikeys
from common.clock import utcnow
from common.errors import NotFound
from common.money import Money, exponent
from sla import service as sla

log = logging.getLogger("api.finance_page")

TEMPLATES: Final = Path(__file__).resolve().parent.parent / "templates"
STATIC: Final = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH: Final = "/finance/static"
PAGE_SIZE: Final = 25
LIST_SIZE: Final = 50
INVOICE_STATUSES: Final = ("draft", "open", "paid", "uncollectible", "void")
# The page is HTML for a person: no caching of finance data, no framing, nothing foreign.
HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


# ---------------------------------------------------------------- money and time, for people


def amount_text(amount: int, currency: str) -> str:
    """12345 usd → ``123.45 USD`` (integer arithmetic: minor units stay exact)."""
    c = currency.lower()
    digits = exponent(c)
    sign = "-" if amount < 0 else ""
    if digits == 0:
        return f"{sign}{abs(amount):,} {c.upper()}"
    whole, part = divmod(abs(amount), 10**digits)
    return f"{sign}{whole:,}.{part:0{digits}d} {c.upper()}"


def _amount_in(currency: str, amount: int) -> str:
    return amount_text(amount, currency)


def money_text(value: Money | None) -> str:
    return "" if value is None else amount_text(value.amount, value.currency)


def time_text(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


NOTHING: Final = "\u2013"  # an en dash: no figure (yet)


def _percent(value: float | None) -> str:
    return NOTHING if value is None else f"{value:.1f} %"


def _minutes(value: float | None) -> str:
    return NOTHING if value is None else f"{value:.0f} min"


# ---------------------------------------------------------------- the filters


@dataclass(frozen=True)
class Filters:
    """The invoice filters as the form sends them (GET query), checked."""

    customer: str = ""
    status: str = ""
    start: date | None = None  # the first day shown (UTC)
    end: date | None = None  # the last day shown, inclusive (UTC)
    after: str = ""
    limit: int = PAGE_SIZE
    errors: dict[str, str] = field(default_factory=dict)
    # Well-formed but refused by a rule (``to`` before ``from``): 422, as in the API;
    # anything that cannot be read at all is 400.
    rule_errors: frozenset[str] = frozenset()

    @property
    def error_status(self) -> int:
        return 422 if set(self.errors) <= self.rule_errors else 400

    @property
    def created_from(self) -> datetime | None:
        return (
            None if self.start is None else datetime.combine(self.start, datetime.min.time(), UTC)
        )

    @property
    def created_to(self) -> datetime | None:
        if self.end is None:
            return None
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time(), UTC)

    def query(self, **changes: str) -> str:
        """This filter set as a query string (empty values left out), with ``changes``."""
        values = {
            "customer": self.customer,
            "status": self.status,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "limit": "" if self.limit == PAGE_SIZE else str(self.limit),
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})


def _day(raw: str | None, name: str, errors: dict[str, str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = f"{name!r} must be a date as YYYY-MM-DD, not {raw[:40]!r}"
        return None


def parse_filters(params: dict[str, str]) -> Filters:
    """Filters from the query; what is wrong is named in ``errors`` (and nothing is listed)."""
    errors: dict[str, str] = {}
    customer = params.get("customer", "").strip()
    if len(customer) > 100:
        errors["customer"] = "a customer id is at most 100 characters"
    status = params.get("status", "").strip()
    if status and status not in INVOICE_STATUSES:
        errors["status"] = f"status must be one of {', '.join(INVOICE_STATUSES)}"
    start = _day(params.get("from"), "from", errors)
    end = _day(params.get("to"), "to", errors)
    rules: frozenset[str] = frozenset()
    if start and end and start > end:
        errors["to"] = "'to' must not be before 'from'"
        rules = frozenset({"to"})
    limit = PAGE_SIZE
    raw_limit = params.get("limit", "")
    if raw_limit:
        if raw_limit.isdigit() and 1 <= int(raw_limit) <= 100:
            limit = int(raw_limit)
        else:
            errors["limit"] = "limit must be a whole number from 1 to 100"
    after = params.get("after", "").strip()
    if len(after) > 100:
        errors["after"] = "not a page of this list"
    return Filters(customer, status, start, end, after, limit, errors, rules)


def report_window(filters: Filters, now: datetime) -> tuple[datetime, datetime]:
    """The reports' window: the filter's days, else the twelve UTC months up to this one."""
    end = filters.created_to
    if end is None:
        first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (first + timedelta(days=32)).replace(day=1)
    start = filters.created_from
    if start is None:
        start = end
        for _ in range(12):
            start = (start - timedelta(days=1)).replace(day=1)
    return start, end


# ---------------------------------------------------------------- the revenue chart


def months_between(start: datetime, end: datetime) -> list[str]:
    """The UTC months (``2026-11``) that ``[start, end)`` touches, in order."""
    first = start.astimezone(UTC)
    last = (end.astimezone(UTC) - timedelta(microseconds=1)) if end > start else first
    year, month, labels = first.year, first.month, []
    while (year, month) <= (last.year, last.month):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return labels


def revenue_charts(report: schemas.RevenueReport) -> list[dict[str, Any]]:
    """One chart per currency (never summed across currencies): net revenue per month of
    the window, a month without any shown as zero."""
    by_currency: dict[str, dict[str, int]] = {}
    for row in report.rows:
        months = by_currency.setdefault(row.currency, {})
        months[row.group] = months.get(row.group, 0) + row.net.amount
    window = months_between(report.start, report.end)
    charts = []
    for currency, months in sorted(by_currency.items()):
        labels = sorted({*window, *months})
        bars = [Bar(label=m, value=months.get(m, 0)) for m in labels]
        svg = bar_chart(
            f"Net revenue by month ({currency.upper()})",
            bars,
            functools.partial(_amount_in, currency),
            chart_id=f"revenue-{currency}",
        )
        # Markup: built by api.charts, which escapes every datum it writes.
        charts.append({"currency": currency, "svg": Markup(svg), "bars": bars})  # noqa: S704
    return charts


# ---------------------------------------------------------------- responses


def _page(name: str, context: dict[str, Any], status_code: int = 200, **extra: Any) -> Template:
    return Template(
        template_name=name,
        context={"static": STATIC_PATH, **context},
        status_code=status_code,
        headers=HEADERS,
        # Said outright: the CSV route's own media type would otherwise label its error page.
        media_type="text/html; charset=utf-8",
        **extra,
    )


def _sign_in_page(message: str | None = None, status_code: int = 200) -> Template:
    return _page("finance/sign_in.html.j2", {"message": message}, status_code)


def _to_sign_in(_: Request[Any, Any, Any], __: SignInRequired) -> Response[Any]:
    return Redirect("/finance/sign-in", status_code=303, headers=HEADERS)


def _refused(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _page(
        "finance/error.html.j2",
        {"title": "Refused", "detail": exc.detail},
        status_code=exc.status_code,
    )


def _not_found(_: Request[Any, Any, Any], exc: NotFound) -> Response[Any]:
    return _page("finance/error.html.j2", {"title": "Not found", "detail": exc.detail}, 404)


def _csv_name(filters: Filters) -> str:
    parts = ["invoices", filters.customer, filters.status]
    parts += [
        filters.start.isoformat() if filters.start else "",
        filters.end.isoformat() if filters.end else "",
    ]
    safe = "-".join(p for p in parts if p)
    return "".join(ch for ch in safe if ch.isalnum() or ch in "-_") + ".csv"


class FinancePage(Controller):
    """The pages; each GET needs a live session (else it is sent to the sign-in form)."""

    path = "/finance"
    include_in_schema = False
    dependencies = {"session": Provide(sessions.current_session)}
    exception_handlers = {
        SignInRequired: _to_sign_in,
        CrossSiteRequest: _refused,
        NotFound: _not_found,
    }

    @get("/sign-in", operation_id="financeSignInForm", summary="The finance page's sign-in form")
    async def sign_in_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The form that exchanges a finance or admin key for a session (POSTed, never in a
        URL); a browser already signed in goes on to the page."""
        secret = request.cookies.get(COOKIE)
        if secret and await sessions.find_live(secret):
            return Redirect("/finance", status_code=303, headers=HEADERS)
        return _sign_in_page()

    @post(
        "/session",
        operation_id="financeSignIn",
        summary="Exchange a finance key for a session cookie",
        status_code=303,
    )
    async def sign_in(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Check the form's key (finance or admin role), open an 8-hour session and set its
        cookie; a wrong key is 401, a key of another role 403, a form from elsewhere 403."""
        sessions.check_same_origin(request)
        form = await request.form()
        key = form.get("key")
        presented = key.strip() if isinstance(key, str) else ""
        principal = await apikeys.authenticate(presented) if presented else None
        if principal is None:
            return _sign_in_page("That key is not a valid API key.", 401)
        if principal.role not in sessions.PAGE_ROLES:
            return _sign_in_page(
                f"A {principal.role} key cannot open the finance page: use a finance key.", 403
            )
        # A fresh secret every time, and the session this browser had before ends: a
        # cookie planted before sign-in (session fixation) never becomes a live session.
        await sessions.end(request.cookies.get(COOKIE, ""))
        secret, _ = await sessions.open_session(principal)
        log.info("finance page session opened for key %s (%s)", principal.key_id, principal.role)
        return Redirect(
            "/finance",
            status_code=303,
            headers=HEADERS,
            cookies=[sessions.session_cookie(request, secret)],
        )

    @post(
        "/sign-out",
        operation_id="financeSignOut",
        summary="End the finance page session",
        status_code=303,
    )
    async def sign_out(
        self, request: Request[Any, Any, Any], session: NamedDependency[sessions.Session]
    ) -> Response[Any]:
        """End the session (its cookie is then worth nothing, also if copied) and clear the
        cookie; needs the page's CSRF token and Origin."""
        sessions.check_same_origin(request)
        form = await request.form()
        token = form.get(sessions.CSRF_FIELD)
        sessions.check_csrf(session, token if isinstance(token, str) else None)
        await sessions.end(request.cookies.get(COOKIE, ""))
        return Redirect(
            "/finance/sign-in",
            status_code=303,
            headers=HEADERS,
            cookies=[sessions.cleared_cookie(request)],
        )

    @get(operation_id="financeInvoices", summary="Invoices, service credits and credit notes")
    async def invoices(
        self, request: Request[Any, Any, Any], session: NamedDependency[sessions.Session]
    ) -> Template:
        """Invoices with their filters, pages and CSV download; service credits and refunds
        with their incidents; credit notes (the customer filter applies to all three)."""
        filters = parse_filters(dict(request.query_params))
        context: dict[str, Any] = {
            "session": session,
            "section": "invoices",
            "filters": filters,
            "statuses": INVOICE_STATUSES,
        }
        if filters.errors:
            return _page("finance/invoices.html.j2", context, filters.error_status)
        customer = filters.customer or None
        invoices, more = await billing.list_invoices(
            customer_id=customer,
            status=filters.status or None,
            created_from=filters.created_from,
            created_to=filters.created_to,
            limit=filters.limit,
            starting_after=filters.after or None,
        )
        credits, _ = await billing.list_credits(customer, LIST_SIZE, None)
        notes, _ = await billing.list_credit_notes(customer, LIST_SIZE, None)
        context.update(
            invoices=invoices,
            next_url=f"/finance?{filters.query(after=invoices[-1].id)}" if more else None,
            first_url=f"/finance?{filters.query()}" if filters.after else None,
            csv_url=f"/finance/invoices.csv?{filters.query()}",
            credits=credits,
            credit_notes=notes,
        )
        return _page("finance/invoices.html.j2", context)

    @get("/reports", operation_id="financeReports", summary="Revenue by month, SLA, worth it")
    async def reports(
        self, request: Request[Any, Any, Any], session: NamedDependency[sessions.Session]
    ) -> Template:
        """Net revenue by month as a chart (and its table), SLA attainment per tier and
        priority and the 'worth it' comparison, over the window's days (else the twelve UTC
        months up to this one), for every customer."""
        given = dict(request.query_params)
        filters = parse_filters({k: given[k] for k in ("from", "to") if k in given})
        context: dict[str, Any] = {"session": session, "section": "reports", "filters": filters}
        if filters.errors:
            return _page("finance/reports.html.j2", context, filters.error_status)
        start, end = report_window(filters, utcnow())
        # Independent reads, each on its own pooled connection: what waits on PostgreSQL
        # overlaps (the Python parts of the SLA reports still take turns).
        revenue, sla_report, worth_it = await asyncio.gather(
            billing.revenue_report(start=start, end=end, group_by="month"),
            sla.sla_report(start=start, end=end),
            sla.worth_it_report(start=start, end=end),
        )
        context.update(
            window=(start, end),
            charts=revenue_charts(revenue),
            revenue=revenue,
            sla=sla_report,
            worth_it=worth_it,
        )
        return _page("finance/reports.html.j2", context)

    @get(
        "/invoices.csv",
        operation_id="financeInvoicesCsv",
        summary="The filtered invoices as CSV",
        media_type="text/csv",
    )
    async def invoices_csv(
        self, request: Request[Any, Any, Any], session: NamedDependency[sessions.Session]
    ) -> Response[Any]:
        """The invoices the page's filters select, every page of them, streamed as the API's
        `/v1/invoices/export.csv` writes them (minor units and decimals)."""
        filters = parse_filters(dict(request.query_params))
        if filters.errors:
            return _page(
                "finance/error.html.j2",
                {"title": "Bad filter", "detail": "; ".join(filters.errors.values())},
                filters.error_status,
            )
        return Stream(
            billing.invoices_csv(
                customer_id=filters.customer or None,
                status=filters.status or None,
                created_from=filters.created_from,
                created_to=filters.created_to,
            ),
            media_type="text/csv; charset=utf-8",
            headers={
                **HEADERS,
                "Content-Disposition": f'attachment; filename="{_csv_name(filters)}"',
            },
        )

    @get(
        "/incidents/{incident_id:str}",
        operation_id="financeIncident",
        summary="One incident and its SLA ledger",
    )
    async def incident(
        self, incident_id: FromPath[str], session: NamedDependency[sessions.Session]
    ) -> Template:
        """The incident a credit or refund was paid for: its deadline, outcome and the SLA
        event ledger. Only what the ledger itself tells (finance may read the ledger, not
        the helpdesk's incident: no ticket reference, no context)."""
        found = await sla.get_incident(incident_id)
        events, _ = await sla.list_events(incident_id, limit=100)
        return _page(
            "finance/incident.html.j2",
            {"session": session, "section": "invoices", "incident": found, "events": events},
        )


def static_files() -> ControllerRouterHandler:
    """The page's stylesheet, from this package (nothing from a CDN)."""
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC],
        include_in_schema=False,
        name="finance-static",
    )


ROUTES: Sequence[ControllerRouterHandler] = (FinancePage, static_files())
FORM_PATHS: Final = frozenset({"/finance/session", "/finance/sign-out"})

FILTERS = {
    "money": money_text,
    "amount": amount_text,
    "when": time_text,
    "percent": _percent,
    "minutes": _minutes,
}
