"""The API docs render offline: Swagger UI from the service itself, in a real browser."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS


def test_the_docs_page_shows_every_operation_with_nothing_from_outside(
    chromium: str, api_process: str
) -> None:
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            # Anything not served by the API itself is refused (and noted): offline is the test.
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if urlsplit(route.request.url).netloc == urlsplit(api_process).netloc
                    else (outside.append(route.request.url), route.abort())
                ),
            )
            page.goto(f"{api_process}/schema", wait_until="networkidle")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()
    assert outside == []
    assert "Support Billing" in title
    shown = {p.replace("\u200b", "").strip() for p in paths}
    for path in (
        "/v1/plans",
        "/v1/customers/{customer_id}/entitlements",
        "/v1/incidents",
        "/v1/stripe/webhook",
        "/v1/invoices/export.csv",
        "/health",
    ):
        assert path in shown, sorted(shown)
    assert len(shown) >= 30
