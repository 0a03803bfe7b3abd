"""The finance page's sign-in: a key exchanged for a session cookie, CSRF-safe forms.

Over HTTP on the app (the browser test drives the same page in Chromium). The test client's
host is ``testserver`` (not loopback), so the cookie comes back Secure and is sent by hand.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from api.charts import Bar, bar_chart
from api.routes.finance_page import amount_text, months_between, parse_filters, report_window
from common import apikeys
from common.clock import frozen, utcnow
from common.tables import FinanceSession

ORIGIN = {"Origin": "http://testserver"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _key(role: str) -> str:
    _, secret = await apikeys.create_key(f"page {role}", role)
    return secret


def _set_cookie(r: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def _sign_in(client: httpx.AsyncClient, key: str, **headers: str) -> httpx.Response:
    return await client.post("/finance/session", data={"key": key}, headers={**ORIGIN, **headers})


async def _signed_in(client: httpx.AsyncClient, role: str = "finance") -> str:
    r = await _sign_in(client, await _key(role))
    assert r.status_code == 303, r.text
    return _set_cookie(r)["sb_session"].value


def _with(cookie: str) -> dict[str, str]:
    return {"Cookie": f"sb_session={cookie}"}


async def test_a_finance_key_opens_a_session_cookie_with_safe_flags(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = await _key("finance")
    r = await _sign_in(client, key)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/finance"
    [header] = r.headers.get_list("set-cookie")
    cookie = _set_cookie(r)["sb_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/finance"
    assert cookie["secure"] is True  # testserver is not a loopback host
    assert cookie["max-age"] == str(8 * 3600)
    assert key not in header
    # Stored hashed: the table opens no session, and holds nothing of the key.
    rows = await FinanceSession.select()
    assert [row["id"] for row in rows] == [hashlib.sha256(cookie.value.encode()).hexdigest()]
    assert all(key not in str(v) and cookie.value not in str(v) for v in rows[0].values())
    page = await client.get("/finance", headers=_with(cookie.value))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for table in ("invoices", "service-credits", "credit-notes"):
        assert f'<table id="{table}">' in page.text
    reports = await client.get("/finance/reports", headers=_with(cookie.value))
    assert reports.status_code == 200, reports.text
    for table in ("revenue", "sla-attainment", "worth-it"):
        assert f'<table id="{table}">' in reports.text
    assert "page finance (finance)" in page.text
    assert key not in caplog.text and cookie.value not in caplog.text  # never logged


async def test_an_admin_key_may_sign_in_too(client: httpx.AsyncClient) -> None:
    cookie = await _signed_in(client, "admin")
    assert (await client.get("/finance", headers=_with(cookie))).status_code == 200
    # Signing in again from the same browser ends the session it had: one live session.
    r = await _sign_in(client, await _key("finance"), **_with(cookie))
    fresh = _set_cookie(r)["sb_session"].value
    assert fresh != cookie
    assert (await client.get("/finance", headers=_with(cookie))).status_code == 303
    assert (await client.get("/finance", headers=_with(fresh))).status_code == 200
    assert await FinanceSession.count() == 1
    cookie = fresh
    # Signed in already: the form sends you on to the page.
    r = await client.get("/finance/sign-in", headers=_with(cookie))
    assert (r.status_code, r.headers["location"]) == (303, "/finance")


@pytest.mark.parametrize(
    ("key", "status", "says"),
    [
        ("sbk_00000000notakeyatall", 401, "not a valid API key"),
        ("", 401, "not a valid API key"),
        ("helpdesk", 403, "helpdesk key cannot open the finance page"),
    ],
)
async def test_a_wrong_key_or_role_opens_nothing(
    client: httpx.AsyncClient, clean_db: None, key: str, status: int, says: str
) -> None:
    presented = await _key("helpdesk") if key == "helpdesk" else key
    r = await _sign_in(client, presented)
    assert r.status_code == status, r.text
    assert says in r.text
    assert r.headers.get_list("set-cookie") == []
    if presented:
        assert presented not in r.text  # the key is never echoed back
    assert await FinanceSession.count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Origin, no Referer
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/finance/sign-in"},
    ],
)
async def test_a_sign_in_form_from_another_site_is_refused(
    client: httpx.AsyncClient, clean_db: None, headers: dict[str, str]
) -> None:
    key = await _key("finance")
    r = await client.post("/finance/session", data={"key": key}, headers=headers)
    assert r.status_code == 403, r.text
    assert await FinanceSession.count() == 0
    # Same host named by Referer alone (a browser that sends no Origin) is accepted.
    ok = await client.post(
        "/finance/session",
        data={"key": key},
        headers={"Referer": "http://testserver/finance/sign-in"},
    )
    assert ok.status_code == 303


async def test_the_key_is_read_from_the_form_only_never_from_the_url(
    client: httpx.AsyncClient,
) -> None:
    key = await _key("finance")
    r = await client.post(f"/finance/session?key={key}", headers={**ORIGIN, **FORM})
    assert r.status_code == 401
    assert await FinanceSession.count() == 0
    form = (await client.get("/finance/sign-in")).text
    assert '<form method="post" action="/finance/session"' in form
    assert 'type="password"' in form
    assert '<label for="key">' in form


async def test_pages_without_a_live_session_send_you_to_the_sign_in_form(
    client: httpx.AsyncClient, clean_db: None
) -> None:
    for path in ("/finance", "/finance/reports", "/finance/invoices.csv", "/finance/incidents/x"):
        for headers in ({}, _with("forged"), _with("")):
            r = await client.get(path, headers=headers)
            assert r.status_code == 303, (path, r.text)
            assert r.headers["location"] == "/finance/sign-in"
    assert (await client.get("/finance/sign-in")).status_code == 200


async def test_the_session_does_not_open_the_api(client: httpx.AsyncClient) -> None:
    cookie = await _signed_in(client)
    r = await client.get("/v1/invoices", headers=_with(cookie))
    assert r.status_code == 401
    r = await client.get("/v1/invoices/export.csv", headers=_with(cookie))
    assert r.status_code == 401


async def test_sign_out_needs_the_csrf_token_and_origin_then_ends_the_session(
    client: httpx.AsyncClient,
) -> None:
    cookie = await _signed_in(client)
    page = (await client.get("/finance", headers=_with(cookie))).text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert len(token) >= 40
    refused = [
        ({"csrf_token": "wrong"}, ORIGIN),
        ({}, ORIGIN),
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": token}, {}),
    ]
    for form, headers in refused:
        r = await client.post("/finance/sign-out", data=form, headers={**headers, **_with(cookie)})
        assert r.status_code == 403, (form, headers, r.text)
        assert (await client.get("/finance", headers=_with(cookie))).status_code == 200
    assert await FinanceSession.count() == 1
    r = await client.post(
        "/finance/sign-out", data={"csrf_token": token}, headers={**ORIGIN, **_with(cookie)}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/finance/sign-in"
    cleared = _set_cookie(r)["sb_session"]
    assert (cleared.value, cleared["max-age"], cleared["path"]) == ("", "0", "/finance")
    assert await FinanceSession.count() == 0
    # A copy of the old cookie is worth nothing now.
    assert (await client.get("/finance", headers=_with(cookie))).status_code == 303


async def test_another_sessions_csrf_token_does_not_sign_you_out(
    client: httpx.AsyncClient,
) -> None:
    mine = await _signed_in(client)
    theirs = await _signed_in(client)
    page = (await client.get("/finance", headers=_with(theirs))).text
    their_token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = await client.post(
        "/finance/sign-out", data={"csrf_token": their_token}, headers={**ORIGIN, **_with(mine)}
    )
    assert r.status_code == 403
    assert await FinanceSession.count() == 2


async def test_a_session_ends_after_eight_hours_and_with_its_key(
    client: httpx.AsyncClient,
) -> None:
    cookie = await _signed_in(client)
    with frozen(utcnow() + timedelta(hours=7, minutes=59)):
        assert (await client.get("/finance", headers=_with(cookie))).status_code == 200
    with frozen(utcnow() + timedelta(hours=8, seconds=1)):
        assert (await client.get("/finance", headers=_with(cookie))).status_code == 303
        # The next sign-in sweeps sessions past their end.
        await _signed_in(client)
        assert await FinanceSession.count() == 1
    info, key = await apikeys.create_key("revoked soon", "finance")
    r = await _sign_in(client, key)
    other = _set_cookie(r)["sb_session"].value
    assert (await client.get("/finance", headers=_with(other))).status_code == 200
    await apikeys.revoke_key(info.id)
    # At once, not after the API's 5 s key cache: the session reads the key's row.
    assert (await client.get("/finance", headers=_with(other))).status_code == 303


async def test_the_cookie_is_not_secure_only_on_plain_http_loopback(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as c:
        c.base_url = httpx.URL("http://127.0.0.1")
        key = await _key("finance")
        r = await c.post(
            "/finance/session", data={"key": key}, headers={"Origin": "http://127.0.0.1"}
        )
        assert r.status_code == 303, r.text
        assert _set_cookie(r)["sb_session"]["secure"] == ""
        assert _set_cookie(r)["sb_session"]["httponly"] is True


async def test_the_forms_take_urlencoded_bodies_held_to_the_input_rules(
    client: httpx.AsyncClient, clean_db: None
) -> None:
    r = await client.post("/finance/session", json={"key": "x"}, headers=ORIGIN)
    assert r.status_code == 415
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post("/finance/session", content=b"key=%00abc", headers={**ORIGIN, **FORM})
    assert r.status_code == 400
    r = await client.post("/finance/session", content=b"key=%ff%fe", headers={**ORIGIN, **FORM})
    assert r.status_code == 400
    # The API keeps refusing forms.
    r = await client.post("/v1/plans", content=b"code=x", headers=FORM)
    assert r.status_code == 415


async def test_bad_filters_are_400_or_422_and_list_nothing(client: httpx.AsyncClient) -> None:
    cookie = await _signed_in(client)
    cases = {
        "from=2026-13-01": 400,
        "status=lost": 400,
        "limit=0": 400,
        "from=2026-11-02&to=2026-11-01": 422,  # well-formed, refused by a rule (as in /v1)
        "from=2026-11-02&to=2026-11-01&status=lost": 400,
    }
    for query, status in cases.items():
        r = await client.get(f"/finance?{query}", headers=_with(cookie))
        assert r.status_code == status, query
        assert 'role="alert"' in r.text
        assert '<table id="invoices">' not in r.text
        r = await client.get(f"/finance/invoices.csv?{query}", headers=_with(cookie))
        assert r.status_code == status, query
        assert "text/csv" not in r.headers["content-type"]
    for query, status in {
        "from=2026-13-01": 400,
        "to=soon": 400,
        "from=2026-11-02&to=2026-11-01": 422,
    }.items():
        r = await client.get(f"/finance/reports?{query}", headers=_with(cookie))
        assert r.status_code == status, query
        assert 'role="alert"' in r.text
        assert '<table id="sla-attainment">' not in r.text


def test_filters_read_days_as_utc_with_the_last_day_included() -> None:
    f = parse_filters(
        {"customer": " cust_1 ", "status": "paid", "from": "2026-11-01", "to": "2026-11-30"}
    )
    assert f.errors == {}
    assert (f.customer, f.status) == ("cust_1", "paid")
    assert f.created_from is not None and f.created_from.isoformat() == "2026-11-01T00:00:00+00:00"
    assert f.created_to is not None and f.created_to.isoformat() == "2026-12-01T00:00:00+00:00"
    assert f.query(after="inv_9") == (
        "customer=cust_1&status=paid&from=2026-11-01&to=2026-11-30&after=inv_9"
    )
    start, end = report_window(f, utcnow())
    assert (start, end) == (f.created_from, f.created_to)
    start, end = report_window(parse_filters({}), utcnow().replace(year=2026, month=3, day=15))
    assert (start.isoformat()[:10], end.isoformat()[:10]) == ("2025-04-01", "2026-04-01")


def test_amounts_are_exact_in_their_currency() -> None:
    assert amount_text(123456789, "usd") == "1,234,567.89 USD"
    assert amount_text(-2495, "eur") == "-24.95 EUR"
    assert amount_text(5000, "jpy") == "5,000 JPY"
    assert amount_text(1234, "kwd") == "1.234 KWD"
    assert amount_text(5, "usd") == "0.05 USD"


def test_the_chart_is_svg_with_every_value_written_and_escaped() -> None:
    svg = bar_chart(
        "Net <revenue>",
        [Bar("2026-10", 57305), Bar("2026-11", -2495), Bar("<b>", 0)],
        lambda v: amount_text(v, "usd"),
        chart_id="revenue-usd",
    )
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="revenue-usd"')
    assert 'role="img"' in svg
    assert '<title id="revenue-usd-title">Net &lt;revenue&gt;</title>' in svg
    assert svg.count('<g class="bar"') == 3
    assert 'data-label="2026-10" data-value="57305"' in svg
    assert ">573.05 USD</text>" in svg and ">-24.95 USD</text>" in svg
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "<title>&lt;b&gt;: 0.00 USD</title>" in svg  # a zero bar says so on hover only


def test_the_chart_has_a_bar_for_every_month_of_the_window() -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text)

    assert months_between(at("2025-12-01T00:00:00+00:00"), at("2026-03-01T00:00:00+00:00")) == [
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert months_between(at("2026-11-30T00:00:00+00:00"), at("2026-12-01T00:00:01+00:00")) == [
        "2026-11",
        "2026-12",
    ]


async def test_an_unknown_incident_is_a_404_page(client: httpx.AsyncClient) -> None:
    cookie = await _signed_in(client)
    r = await client.get("/finance/incidents/inc_nope", headers=_with(cookie))
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "no incident inc_nope" in r.text


async def test_mirrored_text_is_escaped_and_only_web_urls_are_linked(
    client: httpx.AsyncClient,
) -> None:
    from billing.tables import Invoice

    await Invoice.insert(
        Invoice(
            id="inv_x1",
            stripe_invoice_id="in_x1",
            customer_id="cust_x",
            number="<script>alert(1)</script>",
            status="open",
            currency="usd",
            total=100,
            created=utcnow(),
            hosted_invoice_url="javascript:alert(1)",
        )
    )
    cookie = await _signed_in(client)
    page = (await client.get("/finance", headers=_with(cookie))).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert "javascript:" not in page
