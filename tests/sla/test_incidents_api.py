"""The incidents API: opening, reading, responding, pausing, re-prioritising, resolving."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from billing.tables import IncidentUsage
from sla.tables import Incident as IncidentRow
from tests.sla.conftest import P1_MINUTES, P2_MINUTES, Open, ago, iso, ledger, outbound, parse


async def test_open_returns_the_deadline_and_warnings(
    open_incident: Open, customer: dict[str, Any]
) -> None:
    opened_at = ago(minutes=10).replace(microsecond=0)
    r = await open_incident(customer["id"], "T-1", "p1", opened_at=opened_at, context={"a": [1]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("inc_")
    assert body["sla_status"] == "active"
    assert body["tier"] == "standard"
    assert body["target"] == {
        "first_response_minutes": P1_MINUTES,
        "coverage": "business_hours",
        "source": "plan",
    }
    assert parse(body["due_at"]) == opened_at + timedelta(minutes=P1_MINUTES)
    assert [parse(w) for w in body["warn_at"]] == [
        opened_at + timedelta(minutes=m) for m in (720, 1080, 1296)
    ]
    assert body["due_at"].endswith("Z")
    assert body["context"] == {"a": [1]}
    assert body["entitlement"]["calendar"]["timezone"] == "UTC"
    assert await ledger(body["id"]) == ["opened"]


async def test_opening_the_same_ticket_again_returns_the_same_incident(
    open_incident: Open, customer: dict[str, Any]
) -> None:
    first = await open_incident(customer["id"], "T-2", "p1")
    again = await open_incident(customer["id"], "T-2", "p3")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["priority"] == "p1"
    assert await IncidentRow.count() == 1


async def test_bad_input_is_refused_with_problem_json_and_changes_nothing(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    cases = [
        (await open_incident(customer["id"], "B-1", "p9"), 400, "priority"),
        (await open_incident(customer["id"], "B-2", "p1", opened_at=ago(minutes=-10)), 422, None),
        (await open_incident("cust_nope", "B-3", "p1"), 404, None),
        (
            await open_incident(customer["id"], "B-4", "p1", opened_at="2026-01-01T10:00:00"),
            400,
            None,
        ),
        (await open_incident(customer["id"], "B-5", "p1", color="red"), 400, "color"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == status
        assert problem["detail"]
        if field:
            assert field in {e["field"] for e in problem["errors"]}
    assert await IncidentRow.count() == 0
    r = await client.get("/v1/incidents/inc_missing", headers=helpdesk_headers)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_roles_are_enforced(
    client: httpx.AsyncClient,
    finance_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    incident = (await open_incident(customer["id"], "R-1")).json()
    r = await client.post(
        "/v1/incidents",
        headers=finance_headers,
        json={"customer_id": customer["id"], "external_ref": "R-2", "priority": "p1"},
    )
    assert r.status_code == 403
    assert (await client.get(f"/v1/incidents/{incident['id']}")).status_code == 401
    r = await client.get(f"/v1/incidents/{incident['id']}/events", headers=finance_headers)
    assert r.status_code == 200
    assert [e["type"] for e in r.json()["data"]] == ["opened"]


async def test_first_response_in_time_is_achieved(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    incident = (await open_incident(customer["id"], "F-1", opened_at=ago(hours=1))).json()
    r = await client.post(
        f"/v1/incidents/{incident['id']}/first-response", headers=helpdesk_headers, json={}
    )
    assert r.status_code == 200, r.text
    assert r.json()["sla_status"] == "achieved"
    assert r.json()["first_response_at"]
    assert await ledger(incident["id"]) == ["opened", "first_response", "achieved"]
    assert await outbound(incident["id"]) == ["sla.achieved"]
    again = await client.post(
        f"/v1/incidents/{incident['id']}/first-response", headers=helpdesk_headers
    )
    assert again.status_code == 409


async def test_first_response_before_opening_or_in_the_future_is_422(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    opened_at = ago(hours=1)
    incident = (await open_incident(customer["id"], "F-2", opened_at=opened_at)).json()
    url = f"/v1/incidents/{incident['id']}/first-response"
    for at in (opened_at - timedelta(seconds=1), ago(minutes=-5)):
        r = await client.post(url, headers=helpdesk_headers, json={"at": iso(at)})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "at"
    current = (await client.get(f"/v1/incidents/{incident['id']}", headers=helpdesk_headers)).json()
    assert current["sla_status"] == "active"
    assert current["first_response_at"] is None
    assert await ledger(incident["id"]) == ["opened"]


async def test_a_late_first_response_breaches_at_once(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    """Reported before the worker noticed: the response itself proves the deadline missed."""
    incident = (await open_incident(customer["id"], "F-3", opened_at=ago(hours=25))).json()
    r = await client.post(
        f"/v1/incidents/{incident['id']}/first-response",
        headers=helpdesk_headers,
        json={"at": iso(ago(minutes=1))},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sla_status"] == "breached"
    assert body["escalation_level"] == 0  # answered: nobody needs waking
    assert await ledger(incident["id"]) == ["opened", "first_response", "breached"]


async def test_pause_and_resume_push_the_deadline_by_the_paused_time(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    opened_at = ago(hours=2).replace(microsecond=0)
    incident = (await open_incident(customer["id"], "P-1", opened_at=opened_at)).json()
    url = f"/v1/incidents/{incident['id']}"
    paused_from = opened_at + timedelta(minutes=30)
    r = await client.post(
        f"{url}/pause",
        headers=helpdesk_headers,
        json={"at": iso(paused_from), "reason": "customer"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sla_status"] == "paused"
    again = await client.post(f"{url}/pause", headers=helpdesk_headers)
    assert again.status_code == 409
    resumed_at = paused_from + timedelta(minutes=45)
    r = await client.post(f"{url}/resume", headers=helpdesk_headers, json={"at": iso(resumed_at)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sla_status"] == "active"
    assert parse(body["due_at"]) == parse(incident["due_at"]) + timedelta(minutes=45)
    assert parse(body["warn_at"][0]) == parse(incident["warn_at"][0]) + timedelta(minutes=45)
    assert body["pauses"] == [{"from": iso(paused_from), "to": iso(resumed_at)}]
    assert await ledger(incident["id"]) == ["opened", "paused", "resumed"]
    assert (await client.post(f"{url}/resume", headers=helpdesk_headers)).status_code == 409


async def test_priority_change_recomputes_from_opened_at(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    opened_at = ago(hours=3).replace(microsecond=0)
    incident = (await open_incident(customer["id"], "C-1", "p1", opened_at=opened_at)).json()
    r = await client.patch(
        f"/v1/incidents/{incident['id']}", headers=helpdesk_headers, json={"priority": "p2"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["priority"] == "p2"
    assert parse(body["due_at"]) == opened_at + timedelta(minutes=P2_MINUTES)
    assert body["target"]["first_response_minutes"] == P2_MINUTES
    assert await ledger(incident["id"]) == ["opened", "priority_changed"]
    bad = await client.patch(
        f"/v1/incidents/{incident['id']}", headers=helpdesk_headers, json={"priority": "urgent"}
    )
    assert bad.status_code == 400


async def test_resolve_twice_is_409_and_pausing_a_resolved_incident_is_refused(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    incident = (await open_incident(customer["id"], "X-1", opened_at=ago(hours=1))).json()
    url = f"/v1/incidents/{incident['id']}"
    r = await client.post(f"{url}/resolve", headers=helpdesk_headers)
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert resolved["resolved_at"]
    assert resolved["sla_status"] == "achieved"  # resolving within the deadline answers it
    for path in ("resolve", "pause", "resume", "first-response"):
        r = await client.post(f"{url}/{path}", headers=helpdesk_headers)
        assert r.status_code == 409, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.patch(url, headers=helpdesk_headers, json={"priority": "p2"})
    assert r.status_code == 409
    assert (await client.get(url, headers=helpdesk_headers)).json() == resolved
    assert await ledger(incident["id"]) == ["opened", "first_response", "achieved", "resolved"]


async def test_pausing_an_achieved_incident_is_refused(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    incident = (await open_incident(customer["id"], "X-2")).json()
    url = f"/v1/incidents/{incident['id']}"
    await client.post(f"{url}/first-response", headers=helpdesk_headers)
    r = await client.post(f"{url}/pause", headers=helpdesk_headers)
    assert r.status_code == 409
    assert (await client.get(url, headers=helpdesk_headers)).json()["sla_status"] == "achieved"


async def test_list_filters_and_pages(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    ids = [
        (await open_incident(customer["id"], f"L-{i}", "p1" if i % 2 else "p2")).json()["id"]
        for i in range(5)
    ]
    r = await client.get("/v1/incidents", headers=helpdesk_headers, params={"limit": 2})
    page = r.json()
    assert [i["id"] for i in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    r = await client.get(
        "/v1/incidents",
        headers=helpdesk_headers,
        params={"limit": 10, "starting_after": page["data"][-1]["id"]},
    )
    assert [i["id"] for i in r.json()["data"]] == ids[::-1][2:]
    assert r.json()["has_more"] is False
    r = await client.get(
        "/v1/incidents",
        headers=helpdesk_headers,
        params={"customer_id": customer["id"], "priority": "p2", "sla_status": "active"},
    )
    assert {i["external_ref"] for i in r.json()["data"]} == {"L-0", "L-2", "L-4"}
    bad = await client.get("/v1/incidents", headers=helpdesk_headers, params={"sla_status": "x"})
    assert bad.status_code == 400


async def test_concurrent_opens_of_one_ticket_make_one_incident(
    open_incident: Open, customer: dict[str, Any]
) -> None:
    responses = await asyncio.gather(*(open_incident(customer["id"], "RACE-1") for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await IncidentRow.count() == 1
    assert await IncidentUsage.count() == 1  # billing counted it once


async def test_a_first_response_during_a_pause_achieves_and_ends_the_pause(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    opened_at = ago(hours=3).replace(microsecond=0)
    incident = (await open_incident(customer["id"], "PF-1", opened_at=opened_at)).json()
    url = f"/v1/incidents/{incident['id']}"
    paused_from = opened_at + timedelta(hours=1)
    await client.post(f"{url}/pause", headers=helpdesk_headers, json={"at": iso(paused_from)})
    # Re-prioritised while paused: the deadline follows, the clock stays stopped.
    r = await client.patch(url, headers=helpdesk_headers, json={"priority": "p2"})
    assert r.json()["sla_status"] == "paused"
    assert parse(r.json()["due_at"]) == opened_at + timedelta(minutes=P2_MINUTES)
    answered = paused_from + timedelta(minutes=30)
    r = await client.post(
        f"{url}/first-response", headers=helpdesk_headers, json={"at": iso(answered)}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sla_status"] == "achieved"
    assert body["paused_at"] is None
    assert body["pauses"] == [{"from": iso(paused_from), "to": iso(answered)}]
    assert await ledger(incident["id"]) == [
        "opened",
        "paused",
        "priority_changed",
        "first_response",
        "achieved",
    ]


async def test_a_breached_incident_cannot_be_paused(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    # Overdue, not yet breached by the worker: pausing now would hide the breach.
    incident = (await open_incident(customer["id"], "PB-1", opened_at=ago(hours=25))).json()
    r = await client.post(f"/v1/incidents/{incident['id']}/pause", headers=helpdesk_headers)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert await ledger(incident["id"]) == ["opened"]


async def test_the_event_ledger_pages(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
) -> None:
    incident = (await open_incident(customer["id"], "EV-1", opened_at=ago(hours=2))).json()
    url = f"/v1/incidents/{incident['id']}"
    await client.post(f"{url}/pause", headers=helpdesk_headers)
    await client.post(f"{url}/resume", headers=helpdesk_headers)
    await client.post(f"{url}/resolve", headers=helpdesk_headers)
    first = (
        await client.get(f"{url}/events", headers=helpdesk_headers, params={"limit": 2})
    ).json()
    assert [e["type"] for e in first["data"]] == ["opened", "paused"]
    assert first["has_more"] is True
    rest = (
        await client.get(
            f"{url}/events",
            headers=helpdesk_headers,
            params={"starting_after": first["data"][-1]["id"]},
        )
    ).json()
    assert [e["type"] for e in rest["data"]] == [
        "resumed",
        "first_response",
        "achieved",
        "resolved",
    ]
    assert rest["has_more"] is False
