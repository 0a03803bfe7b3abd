"""``make demo``: the README's tour, run against a running ``make run``, told in words.

Every step is an HTTP call a helpdesk, a storefront or finance would make; the Stripe
side is the emulator, where a customer "pays" through its test helper. A demo plan
whose P1 deadline is one minute lets you watch the SLA engine breach an incident and
pay its service credit while you wait.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from common.config import EMULATOR_API_KEY, Settings

DEMO_PLAN = "demo"
WAIT_SECONDS = 30.0


class DemoFailed(RuntimeError):
    """A step did not answer as the tour expects; the message says which and how."""


@dataclass
class Tour:
    api: httpx.Client
    stripe: httpx.Client
    say: Callable[[str], None]
    admin: dict[str, str]
    helpdesk: dict[str, str]
    finance: dict[str, str]

    def call(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
        r = self.api.request(method, path, headers=headers, **kw)
        if r.status_code >= 400:
            raise DemoFailed(f"{method} {path} answered {r.status_code}: {r.text[:500]}")
        return r.json() if r.headers.get("content-type", "").startswith("application/") else r.text

    def until(
        self,
        what: str,
        fetch: Callable[[], Any],
        done: Callable[[Any], bool],
        timeout: float = WAIT_SECONDS,
    ) -> Any:
        """``fetch()`` again until ``done`` says yes; its last answer."""
        deadline = time.monotonic() + timeout
        while True:
            found = fetch()
            if done(found):
                return found
            if time.monotonic() > deadline:
                raise DemoFailed(f"{what} did not happen within {timeout:.0f} s")
            time.sleep(0.25)


def _key(role: str, name: str) -> str:
    """A new API key from the command line (the key is the last line it prints)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "api.cli", "keys", "create", "--role", role, "--name", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DemoFailed(f"could not create a {role} key: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


def _admin_key(settings: Settings, given: str | None) -> str:
    path = settings.data_dir / "dev-admin-key"
    key = given or (path.read_text().strip() if path.exists() else None)
    if not key:
        raise DemoFailed(
            f"no admin key: start `make run` first (it writes {path}), or pass --admin-key"
        )
    return key


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _session_id(checkout_url: str) -> str:
    return checkout_url.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0]


def _pay(tour: Tour, checkout_url: str) -> None:
    """The customer pays in Checkout (the emulator's test helper does the clicking)."""
    session = _session_id(checkout_url)
    r = tour.stripe.post(
        f"/v1/test_helpers/checkout/sessions/{session}/complete", data={"outcome": "paid"}
    )
    if r.status_code != 200:
        raise DemoFailed(f"the emulator did not complete Checkout {session}: {r.text[:300]}")


def _money(value: dict[str, Any] | None) -> str:
    if not value:
        return "—"
    return f"{value['amount'] / 100:,.2f} {value['currency'].upper()}"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def ensure_demo_plan(tour: Tour) -> dict[str, Any]:
    r = tour.api.get(f"/v1/plans/{DEMO_PLAN}", headers=tour.admin)
    if r.status_code == 200:
        return dict(r.json())
    tour.say("  creating the 'demo' plan: P1 answered within 1 minute, so a breach is quick to see")
    minute = {"first_response_minutes": 1, "coverage": "24x7"}
    return dict(
        tour.call(
            "POST",
            "/v1/plans",
            tour.admin,
            json={
                "code": DEMO_PLAN,
                "name": "Demo (1-minute P1)",
                "description": "For `make demo`: deadlines short enough to watch.",
                "monthly_price": 1000,
                "annual_price": 10000,
                "targets": {
                    "p1": minute,
                    "p2": {"first_response_minutes": 5, "coverage": "24x7"},
                    "p3": {"first_response_minutes": 60, "coverage": "24x7"},
                    "p4": {"first_response_minutes": 240, "coverage": "24x7"},
                },
                "included_incidents": 10,
                "fast_track_price": 4900,
                "fast_track_minutes": 1,
                "credit_percent": 10,
                "credit_cap_percent": 50,
            },
        )
    )


def run_tour(
    base_url: str,
    stripe_url: str,
    settings: Settings,
    say: Callable[[str], None],
    admin_key: str | None = None,
) -> int:
    """The whole tour; returns 0, or raises DemoFailed naming the step that went wrong."""
    started = time.monotonic()
    admin = _bearer(_admin_key(settings, admin_key))
    with (
        httpx.Client(base_url=base_url, timeout=30) as api,
        httpx.Client(base_url=stripe_url, timeout=30, headers=_bearer(EMULATOR_API_KEY)) as stripe,
    ):
        if api.get("/ready").status_code != 200:
            raise DemoFailed(f"{base_url}/ready does not answer 200: is `make run` running?")
        say("Keys: the development admin key, plus a helpdesk and a finance key made now.")
        tour = Tour(
            api,
            stripe,
            say,
            admin,
            _bearer(_key("helpdesk", "demo")),
            _bearer(_key("finance", "demo")),
        )
        ensure_demo_plan(tour)

        say("\n1. A helpdesk's customer, created here and in Stripe")
        ref = f"demo-{int(time.time())}"
        customer = tour.call(
            "POST",
            "/v1/customers",
            admin,
            json={
                "external_id": ref,
                "name": "Acme GmbH (demo)",
                "email": "ops@acme.example",
                "timezone": "Europe/Berlin",
                "country": "DE",
            },
        )
        cid = customer["id"]
        say(f"   {cid} (external_id {ref}), Stripe customer {customer['stripe_customer_id']}")
        ent = tour.call("GET", f"/v1/customers/{cid}/entitlements", tour.helpdesk)
        p1 = ent["targets"]["p1"]
        say(
            f"   entitled to: {ent['tier']} — P1 first response within "
            f"{p1['first_response_minutes']} min ({p1['coverage']})"
        )

        say("\n2. The customer subscribes to the demo plan through Stripe Checkout")
        created = tour.call(
            "POST",
            f"/v1/customers/{cid}/subscription",
            admin,
            json={"plan": DEMO_PLAN, "interval": "month", "mode": "checkout"},
        )
        say(f"   checkout_url: {created['checkout_url']}")
        _pay(tour, created["checkout_url"])
        say("   …paid in Checkout; Stripe's webhook reaches the service and the worker applies it")
        ent = tour.until(
            "the subscription to take effect",
            lambda: tour.call("GET", f"/v1/customers/{cid}/entitlements", tour.helpdesk),
            lambda e: e["tier"] == DEMO_PLAN,
        )
        say(
            f"   entitled to: {ent['tier']} v{ent['plan_version']} ({ent['subscription_status']}),"
            f" valid until {ent['valid_until']}; incidents left: {ent['incidents']['remaining']}"
        )

        say("\n3. The upsell: when would a P2 opened now be answered, and with fast-track?")
        quote = tour.call(
            "GET",
            f"/v1/customers/{cid}/entitlements/quote",
            tour.helpdesk,
            params={"priority": "p2"},
        )
        ft = quote["fast_track"]
        say(
            f"   plan deadline {quote['due_at']}; with fast-track {ft['due_at']}"
            f" for {_money(ft['price'])}"
        )

        say("\n4. Fast-track bought through Checkout, then on the saved card (no customer present)")
        bought = tour.call(
            "POST",
            f"/v1/customers/{cid}/fast-track-purchases",
            tour.helpdesk,
            json={"quantity": 1, "mode": "checkout"},
        )
        _pay(tour, bought["checkout_url"])
        tour.until(
            "the Checkout purchase to be paid",
            lambda: tour.call("GET", f"/v1/customers/{cid}/fast-track-purchases", tour.helpdesk),
            lambda page: any(
                p["id"] == bought["id"] and p["status"] == "paid" for p in page["data"]
            ),
        )
        saved = tour.call(
            "POST",
            f"/v1/customers/{cid}/fast-track-purchases",
            {**tour.helpdesk, "Idempotency-Key": f"{ref}-fast-track"},
            json={"quantity": 2, "mode": "charge_saved_method"},
        )
        say(
            f"   Checkout purchase {bought['id']}: paid;"
            f" saved-card purchase {saved['id']}: {saved['status']}"
        )
        ent = tour.call("GET", f"/v1/customers/{cid}/entitlements", tour.helpdesk)
        say(f"   fast-track credits now: {ent['fast_track']['credits']}")

        say("\n5. A ticket becomes an incident; the worker enforces its deadline")
        incident = tour.call(
            "POST",
            "/v1/incidents",
            tour.helpdesk,
            json={"customer_id": cid, "external_ref": f"{ref}-T1", "priority": "p1"},
        )
        snap = incident["entitlement"]
        say(
            f"   {incident['id']}: tier {incident['tier']} (opened under plan {snap['tier']}"
            f" v{snap['plan_version']}: P1 {incident['target']['first_response_minutes']} min,"
            f" {incident['target']['coverage']}); due {incident['due_at']}"
        )
        fast = tour.call(
            "POST",
            "/v1/incidents",
            tour.helpdesk,
            json={
                "customer_id": cid,
                "external_ref": f"{ref}-T2",
                "priority": "p2",
                "fast_track": True,
            },
        )
        say(
            f"   {fast['id']} (P2, fast-tracked: target from {fast['target']['source']}):"
            f" due {fast['due_at']}"
        )
        tour.call("POST", f"/v1/incidents/{fast['id']}/first-response", tour.helpdesk, json={})
        say(f"   {fast['id']} answered now: achieved")

        due = _at(incident["due_at"])
        left = max(0.0, (due - datetime.now(UTC)).total_seconds())
        say(f"\n6. Nobody answers {incident['id']}: watch it breach in about {left:.0f} s …")

        def current() -> Any:
            return tour.call("GET", f"/v1/incidents/{incident['id']}", tour.helpdesk)

        breached = tour.until(
            "the breach", current, lambda i: i["sla_status"] == "breached", left + WAIT_SECONDS
        )
        late = (_at(breached["breached_at"]) - due).total_seconds()
        say(f"   breached at {breached['breached_at']} ({late:.2f} s after its deadline)")
        credited = tour.until(
            "the service credit",
            current,
            lambda i: bool(i["service_credit"]) and i["service_credit"]["status"] == "issued",
        )
        events = tour.call("GET", f"/v1/incidents/{incident['id']}/events", tour.helpdesk)["data"]
        say("   the ledger: " + ", ".join(e["type"] for e in events))
        credits = tour.call(
            "GET", "/v1/service-credits", tour.finance, params={"customer_id": cid}
        )["data"]
        credit = next(c for c in credits if c["id"] == credited["service_credit"]["id"])
        notes = tour.until(
            "the credit note to reach the finance mirror",
            lambda: tour.call("GET", "/v1/credit-notes", tour.finance, params={"customer_id": cid}),
            lambda page: any(
                n["stripe_credit_note_id"] == credit["stripe_object_id"] for n in page["data"]
            ),
        )
        note = next(
            n for n in notes["data"] if n["stripe_credit_note_id"] == credit["stripe_object_id"]
        )
        say(
            f"   service credit {credit['id']}: {credit['reason']}:"
            f" a credit note of {_money(note['amount'])} on invoice {note['stripe_invoice_id']}"
        )

        say("\n7. Finance reads the invoices and downloads the CSV (finance key: read only)")
        invoices = tour.call("GET", "/v1/invoices", tour.finance, params={"customer_id": cid})[
            "data"
        ]
        for inv in invoices:
            say(f"   {inv['id']} {inv['status']:<6} {_money(inv.get('total'))}")
        refused = api.post("/v1/customers", headers=tour.finance, json={})
        say(f"   a write with the finance key: {refused.status_code} ({refused.json()['title']})")
        exported = api.get(
            "/v1/invoices/export.csv", headers=tour.finance, params={"customer_id": cid}
        )
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        say(
            f"   export.csv: {len(rows)} row(s);"
            f" columns {', '.join(list(rows[0])[:6]) if rows else '—'} …"
        )
    say(f"\nThe tour took {time.monotonic() - started:.0f} s. The README has every call it made.")
    return 0


def main(
    settings: Settings,
    api_url: str | None = None,
    stripe_url: str | None = None,
    admin_key: str | None = None,
) -> int:
    """Run the tour against ``api_url`` (default: HOST/PORT) and the emulator at ``stripe_url``
    (default: STRIPE_EMULATOR_PORT); 0 when every step answered as expected."""
    base = api_url or f"http://{settings.host}:{settings.port}"
    stripe = stripe_url or f"http://127.0.0.1:{settings.stripe_emulator_port}"
    try:
        return run_tour(base, stripe, settings, print, admin_key)
    except DemoFailed as e:
        print(f"\nThe demo stopped: {e}", file=sys.stderr)
        return 1
    except httpx.HTTPError as e:
        # Name the server that did not answer: the API, or the emulator (STRIPE_EMULATOR_PORT).
        url = e.request.url if isinstance(e, httpx.RequestError) else base
        where = f"{url.scheme}://{url.host}:{url.port}" if isinstance(url, httpx.URL) else url
        what = "the Stripe emulator" if where.rstrip("/") == stripe.rstrip("/") else "the API"
        print(
            f"\nThe demo stopped: {what} at {where} did not answer ({e}); is `make run` running"
            " (with the same PORT and STRIPE_EMULATOR_PORT)?",
            file=sys.stderr,
        )
        return 1
