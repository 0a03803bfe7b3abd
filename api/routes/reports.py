"""HTTP routes of the finance reports: revenue, MRR, SLA attainment and "is premium worth
it", each as JSON and as CSV. Read-only: finance and admin keys (the SLA report helpdesk
keys too); a report is a call and a return."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from api.auth import FINANCE, HELPDESK_OR_FINANCE
from billing import schemas
from billing import service as billing
from common.clock import past_instant, utcnow, window
from sla import schemas as sla_schemas
from sla import service as sla

From = Annotated[
    datetime | None,
    QueryParameter(
        name="from", description="RFC 3339 with an offset; included (default: 30 days before `to`)"
    ),
]
To = Annotated[
    datetime | None,
    QueryParameter(
        name="to", description="RFC 3339 with an offset; excluded, after `from` (default: now)"
    ),
]
DEFAULT_SPAN = timedelta(days=30)
Since = Annotated[
    datetime | None,
    QueryParameter(
        name="from",
        description="an earlier instant: the MRR movement (new, expansion, contraction, "
        "churn) from it to `at`",
    ),
]
GroupBy = Annotated[
    schemas.RevenueGroup, QueryParameter(description="`month` (UTC calendar months) or `plan`")
]


async def _chunks(source: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in source:
        yield chunk


def _csv(source: Iterator[bytes] | AsyncIterator[bytes], filename: str) -> Stream:
    body = _chunks(source) if isinstance(source, Iterator) else source
    return Stream(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """``[from, to)``: ``to`` defaults to now, ``from`` to 30 days before ``to``."""
    end = utcnow() if end is None else end
    return window(end - DEFAULT_SPAN if start is None else start, end)


def _mrr_instants(at: datetime | None, since: datetime | None) -> tuple[datetime, datetime | None]:
    instant = utcnow() if at is None else past_instant(at, field="at")
    if since is None:
        return instant, None
    start, instant = window(since, instant, end_field="at")
    return instant, start


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["reports"]
    opt = FINANCE

    @get(
        "/revenue",
        operation_id="getRevenueReport",
        summary="Revenue by month or plan: invoiced, paid, refunded, credited, net",
    )
    async def revenue(
        self, start: From = None, end: To = None, group_by: GroupBy = "month"
    ) -> schemas.RevenueReport:
        """Income in `[from, to)` per group (a UTC month, or a plan) and line
        (`subscriptions`: invoices; `fast_track`: one-off purchases), in each currency,
        never summed across currencies. `invoiced` and `paid` count invoices by their
        creation time (as `/v1/invoices` filters them) and purchases by payment time;
        `refunded` and `credited` count refunds and credit notes by their own creation
        time; `net` is paid - refunded - credited; `service_credits` is the part of those
        that SLA service credits paid. `totals` has one entry per currency. 422 when
        `from` is not before `to`."""
        s, e = _window(start, end)
        return await billing.revenue_report(start=s, end=e, group_by=group_by)

    @get(
        "/revenue/export.csv",
        operation_id="exportRevenueReport",
        summary="The revenue report as CSV (amounts in minor units and as decimals)",
        media_type="text/csv",
    )
    async def revenue_csv(
        self, start: From = None, end: To = None, group_by: GroupBy = "month"
    ) -> Stream:
        """The rows of `GET /v1/reports/revenue` with the same parameters, one CSV line
        each; every amount in minor units and again as a decimal of its currency."""
        s, e = _window(start, end)
        report = await billing.revenue_report(start=s, end=e, group_by=group_by)
        return _csv(billing.revenue_csv(report), "revenue.csv")

    @get(
        "/mrr",
        operation_id="getMrrReport",
        summary="MRR by plan at an instant (annual / 12); trialing and past_due apart",
    )
    async def mrr(
        self, at: Annotated[datetime | None, QueryParameter()] = None, since: Since = None
    ) -> schemas.MrrReport:
        """Monthly recurring revenue per plan and currency at `at` (default now; a future
        instant is 422), from the subscription history: monthly prices as they are, annual
        prices / 12. `mrr` counts `active` subscriptions; `trialing` and `past_due` ones
        are counted apart. With `from`, `movement` says how the active MRR moved from
        `from` to `at` per currency: new, expansion, contraction, churn."""
        instant, start = _mrr_instants(at, since)
        return await billing.mrr_report(at=instant, start=start)

    @get(
        "/mrr/export.csv",
        operation_id="exportMrrReport",
        summary="MRR by plan as CSV",
        media_type="text/csv",
    )
    async def mrr_csv(
        self, at: Annotated[datetime | None, QueryParameter()] = None, since: Since = None
    ) -> Stream:
        """The rows of `GET /v1/reports/mrr` at the same instant, one CSV line each."""
        instant, start = _mrr_instants(at, since)
        return _csv(billing.mrr_csv(await billing.mrr_report(at=instant, start=start)), "mrr.csv")

    @get(
        "/sla",
        operation_id="getSlaReport",
        opt=HELPDESK_OR_FINANCE,
        summary="SLA attainment per tier and priority, first-response median and p95",
    )
    async def sla_report(self, start: From = None, end: To = None) -> sla_schemas.SlaReport:
        """Incidents opened in `[from, to)` per tier (the one they were opened under) and
        priority: how many, achieved, breached, still open, attainment % (achieved of
        decided), the median and p95 time to first response in wall-clock and in business
        minutes, and the service credits paid (per currency). Helpdesk keys too."""
        s, e = _window(start, end)
        return await sla.sla_report(start=s, end=e)

    @get(
        "/sla/export.csv",
        operation_id="exportSlaReport",
        opt=HELPDESK_OR_FINANCE,
        summary="The SLA report as CSV",
        media_type="text/csv",
    )
    async def sla_csv(self, start: From = None, end: To = None) -> Stream:
        """The rows of `GET /v1/reports/sla` with the same window, one CSV line each."""
        s, e = _window(start, end)
        return _csv(sla.sla_csv(await sla.sla_report(start=s, end=e)), "sla.csv")

    @get(
        "/worth-it",
        operation_id="getWorthItReport",
        summary="Is premium worth it: per tier revenue, credits, attainment, first response",
    )
    async def worth_it(self, start: From = None, end: To = None) -> sla_schemas.WorthItReport:
        """Per tier over `[from, to)`, side by side with `standard`: net revenue of its
        subscriptions, service credits paid, attainment and median first response, and how
        much better than `standard` it did (attainment points, first-response speed-up)."""
        s, e = _window(start, end)
        return await sla.worth_it_report(start=s, end=e)

    @get(
        "/worth-it/export.csv",
        operation_id="exportWorthItReport",
        summary="The worth-it table as CSV",
        media_type="text/csv",
    )
    async def worth_it_csv(self, start: From = None, end: To = None) -> Stream:
        """The rows of `GET /v1/reports/worth-it` with the same window, one CSV line each."""
        s, e = _window(start, end)
        return _csv(sla.worth_it_csv(await sla.worth_it_report(start=s, end=e)), "worth-it.csv")


ROUTES: Sequence[ControllerRouterHandler] = (ReportController,)
