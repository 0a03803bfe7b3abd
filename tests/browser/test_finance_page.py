"""The finance review page in a real headless Chromium, against a real API process.

Seeded through the API, the Stripe emulator and the worker (two subscribers, one breached
incident paid back as a credit note); then the browser signs in with a finance key, filters,
downloads the CSV and reads the chart and the tables, also with JavaScript off.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from arq.connections import ArqRedis
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, async_playwright

from billing import service as billing
from billing.schemas import CustomerCreate
from billing.tables import CreditNote, Invoice, ServiceCredit
from common import apikeys
from common.clock import frozen, utcnow
from tests.billing import conftest as billing_fixtures
from tests.billing.conftest import Deliver, Stripe, Subscribed
from tests.browser.conftest import CHROMIUM_ARGS
from workers import queue

seeded = billing_fixtures.seeded
stripe_emu = billing_fixtures.stripe_emu
deliver = billing_fixtures.deliver
subscribed = billing_fixtures.subscribed

ALL_WEEK = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


class Seed:
    def __init__(self, business: str, basic: str, incident: str, key: str) -> None:
        self.business, self.basic, self.incident, self.key = business, basic, incident, key


async def _customer(name: str) -> str:
    created = await billing.create_customer(
        CustomerCreate(
            external_id=f"org-{time.time_ns()}",
            name=name,
            email="finance@acme.test",
            timezone="UTC",
            business_hours=ALL_WEEK,
        )
    )
    return created.id


@pytest.fixture
async def seed(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    seeded: list[str],
    subscribed: Subscribed,
    deliver: Deliver,
    stripe_emu: Stripe,
    redis: ArqRedis,
    run_worker: Callable[[], Awaitable[int]],
) -> Seed:
    business, basic = await _customer("Acme Business"), await _customer("Basic Ltd")
    await subscribed(business, "business")  # 499.00 USD a month
    await subscribed(basic, "basic")  # 99.00 USD a month
    # A P1 on Business (2 h around the clock), still open three hours on (the service's
    # clock): breached, so the worker pays a credit note of 5 % of the monthly fee
    # (24.95 USD) on the paid invoice.
    r = await client.post(
        "/v1/incidents",
        headers=helpdesk_headers,
        json={"customer_id": business, "external_ref": "TICKET-4711", "priority": "p1"},
    )
    assert r.status_code == 201, r.text
    incident = r.json()["id"]
    later = utcnow() + timedelta(hours=3)
    with frozen(later):
        await queue.enqueue_sla_sweep(redis, f"browser-{later.timestamp()}")
        await run_worker()
    await deliver()  # the credit note's events: mirrored
    # Both sides: our rows and the emulator's objects.
    assert await Invoice.count() == 2
    assert await ServiceCredit.count() == 1
    assert await CreditNote.count() == 1
    credit = await ServiceCredit.objects().first()
    assert credit is not None
    assert (credit.incident_id, credit.kind, credit.amount, credit.status) == (
        incident,
        "credit_note",
        2495,
        "issued",
    )
    stripe_customer = (await billing.get_customer(business)).stripe_customer_id
    notes = await stripe_emu.get("/v1/credit_notes", customer=stripe_customer)
    assert [n["total"] for n in notes["data"]] == [2495]
    _, key = await apikeys.create_key("browser finance", "finance")
    return Seed(business, basic, incident, key)


def _local_only(base: str, outside: list[str]) -> Callable[[Route, Request], Awaitable[None]]:
    async def handle(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == urlsplit(base).netloc:
            await route.continue_()
        else:
            outside.append(request.url)
            await route.abort()

    return handle


async def _context(
    browser: Browser, base: str, outside: list[str], visited: list[str], *, js: bool = True
) -> BrowserContext:
    context = await browser.new_context(java_script_enabled=js, accept_downloads=True)
    await context.route("**/*", _local_only(base, outside))
    context.on("request", lambda request: visited.append(request.url))
    return context


async def _sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/finance")
    assert page.url == f"{base}/finance/sign-in"  # no session: sent to the form
    await page.get_by_label("Finance API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/finance")


async def _rows(page: Page, table: str) -> list[list[str]]:
    rows = page.locator(f"table#{table} > tbody > tr")
    return [
        [c.strip() for c in await rows.nth(i).locator("td").all_inner_texts()]
        for i in range(await rows.count())
    ]


async def test_finance_signs_in_filters_downloads_the_csv_and_reads_chart_and_tables(
    chromium: str, api_process: str, seed: Seed
) -> None:
    base = api_process
    outside: list[str] = []
    visited: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await _context(browser, base, outside, visited)
            page = await context.new_page()
            await _sign_in(page, base, seed.key)

            cookies = {c["name"]: c for c in await context.cookies()}
            session = cookies["sb_session"]
            assert session["httpOnly"] is True
            assert session["sameSite"] == "Strict"
            assert session["path"] == "/finance"
            assert session["secure"] is False  # plain http on 127.0.0.1 only
            assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script sees it

            # Every invoice, newest first; the stylesheet came from the service.
            invoices = await _rows(page, "invoices")
            assert len(invoices) == 2
            assert {row[1] for row in invoices} == {seed.business, seed.basic}
            assert sorted(row[4] for row in invoices) == ["499.00 USD", "99.00 USD"]
            assert all(row[2] == "paid" for row in invoices)
            assert f"{base}/finance/static/finance.css" in visited

            # Filter: one customer, paid, created today.
            today = datetime.now(UTC).date().isoformat()
            await page.get_by_label("Customer id").fill(seed.business)
            await page.get_by_label("Status").select_option("paid")
            await page.get_by_label("Created from").fill(today)
            await page.get_by_label("to (inclusive)").fill(today)
            await page.get_by_role("button", name="Filter").click()
            await page.wait_for_load_state()
            assert f"customer={seed.business}" in page.url and "status=paid" in page.url
            [only] = await _rows(page, "invoices")
            assert (only[1], only[4], only[5]) == (seed.business, "499.00 USD", "499.00 USD")

            # The CSV of exactly these filters.
            async with page.expect_download() as info:
                await page.get_by_role("link", name="Download these invoices as CSV").click()
            download = await info.value
            text = (await download.path()).read_text()
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [(r["customer_id"], r["status"], r["total"]) for r in rows] == [
                (seed.business, "paid", "49900")
            ]
            assert download.suggested_filename.startswith("invoices-")

            # Pages: one invoice a page, the next-page link carries the filters on.
            await page.goto(f"{base}/finance?limit=1")
            first = await _rows(page, "invoices")
            await page.get_by_role("link", name="Next page").click()
            await page.wait_for_load_state()
            second = await _rows(page, "invoices")
            assert len(first) == len(second) == 1 and first[0][1] != second[0][1]
            assert await page.get_by_role("link", name="Next page").count() == 0

            # Credits and refunds, with their incident linked.
            await page.goto(f"{base}/finance")
            [credit] = await _rows(page, "service-credits")
            assert (credit[0], credit[1], credit[2], credit[3], credit[4]) == (
                seed.incident,
                seed.business,
                "credit note",
                "24.95 USD",
                "issued",
            )
            [note] = await _rows(page, "credit-notes")
            assert note[3] == "24.95 USD"
            await page.get_by_role("link", name=seed.incident).click()
            await page.wait_for_url(f"{base}/finance/incidents/{seed.incident}")
            events = [row[1] for row in await _rows(page, "sla-events")]
            assert events[0] == "opened" and "breached" in events and "credit_issued" in events
            assert "TICKET-4711" not in await page.content()  # the helpdesk's, not finance's

            await _check_reports(page)

            # Sign out: the session is gone, the pages send you back to the form.
            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url(f"{base}/finance/sign-in")
            await page.goto(f"{base}/finance")
            assert page.url == f"{base}/finance/sign-in"
            assert "sb_session" not in {c["name"] for c in await context.cookies()}
            await context.close()
        finally:
            await browser.close()
    assert outside == []
    assert visited and all(seed.key not in url for url in visited)


async def _check_reports(page: Page) -> None:
    """The chart (SVG, drawn by the server) and the report tables, with the seed's numbers."""
    await page.get_by_role("link", name="Revenue and SLA").click()
    await page.wait_for_url("**/finance/reports")
    month = datetime.now(UTC).strftime("%Y-%m")
    chart = page.locator("svg.chart#revenue-usd")
    assert await chart.count() == 1
    bar = chart.locator(f'g.bar[data-label="{month}"]')
    # 499.00 + 99.00 paid, less the 24.95 credit note.
    assert await bar.get_attribute("data-value") == "57305"
    assert await bar.locator("text.value").text_content() == "573.05 USD"
    revenue = await _rows(page, "revenue")
    assert revenue and all(row[0] == month for row in revenue)
    attainment = {(r[0], r[1]): r for r in await _rows(page, "sla-attainment")}
    business_p1 = attainment[("business", "p1")]
    assert (business_p1[2], business_p1[3], business_p1[4]) == ("1", "0", "1")
    assert business_p1[6] == "0.0 %"
    worth_it = {r[0]: r for r in await _rows(page, "worth-it")}
    assert "business" in worth_it
    assert "24.95 USD" in worth_it["business"][2]


async def test_with_javascript_off_the_page_still_signs_in_and_shows_everything(
    chromium: str, api_process: str, seed: Seed
) -> None:
    base = api_process
    outside: list[str] = []
    visited: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await _context(browser, base, outside, visited, js=False)
            page = await context.new_page()
            await _sign_in(page, base, seed.key)
            assert len(await _rows(page, "invoices")) == 2
            await page.get_by_label("Customer id").fill(seed.basic)
            await page.get_by_role("button", name="Filter").click()
            await page.wait_for_load_state()
            [only] = await _rows(page, "invoices")
            assert (only[1], only[4]) == (seed.basic, "99.00 USD")
            await page.goto(f"{base}/finance")
            assert len(await _rows(page, "service-credits")) == 1
            await _check_reports(page)
            # A wrong key is refused on the form, and said so.
            fresh = await browser.new_context(java_script_enabled=False)
            other = await fresh.new_page()
            await other.goto(f"{base}/finance/sign-in")
            await other.get_by_label("Finance API key").fill("sbk_00000000wrong")
            await other.get_by_role("button", name="Sign in").click()
            await other.wait_for_load_state()
            assert "not a valid API key" in await other.locator("#sign-in-error").inner_text()
            assert other.url == f"{base}/finance/session"
            await fresh.close()
            await context.close()
        finally:
            await browser.close()
    assert outside == []
    assert all(seed.key not in url for url in visited)
    assert not any("?key=" in url or "&key=" in url for url in visited)
