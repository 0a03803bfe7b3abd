"""HTTP routes of the incidents capability, and the deadline quote that shares their arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from litestar import Response, get, patch, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from litestar.types import ControllerRouterHandler

from api.auth import HELPDESK, HELPDESK_OR_FINANCE
from api.pagination import Limit, Page
from sla import service
from sla.schemas import (
    FirstResponse,
    Incident,
    IncidentCreate,
    IncidentUpdate,
    PauseRequest,
    Priority,
    Quote,
    ResolveRequest,
    ResumeRequest,
    SlaEvent,
    SlaStatus,
)
from workers import queue
from workers.sla_jobs import schedule

TAGS = ["incidents"]


async def _changed(state: State, changed: service.Changed) -> Incident:
    await queue.after_commit(schedule(state.redis, changed.jobs), "deadline checks")
    return changed.incident


@post(
    "/v1/incidents",
    operation_id="openIncident",
    tags=TAGS,
    opt=HELPDESK,
    status_code=HTTP_201_CREATED,
    summary="Open an incident (the same customer_id + external_ref returns it again, with 200)",
    responses={
        HTTP_200_OK: ResponseSpec(
            data_container=Incident, description="The incident opened before with this external_ref"
        )
    },
)
async def open_incident(state: State, data: JSONBody[IncidentCreate]) -> Response[Incident]:
    opened = await service.open_incident(data)
    await queue.after_commit(schedule(state.redis, opened.jobs), "deadline checks")
    return Response(
        opened.incident, status_code=HTTP_201_CREATED if opened.created else HTTP_200_OK
    )


@get(
    "/v1/incidents/{incident_id:str}",
    operation_id="getIncident",
    tags=TAGS,
    opt=HELPDESK,
    summary="One incident with its deadline and SLA status",
)
async def get_incident(incident_id: FromPath[str]) -> Incident:
    return await service.get_incident(incident_id)


@get(
    "/v1/incidents",
    operation_id="listIncidents",
    tags=TAGS,
    opt=HELPDESK,
    summary="Incidents, newest first; filter by customer, SLA status and priority",
)
async def list_incidents(
    customer_id: FromQuery[str | None] = None,
    sla_status: FromQuery[SlaStatus | None] = None,
    priority: FromQuery[Priority | None] = None,
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
) -> Page[Incident]:
    found, more = await service.list_incidents(
        limit=limit,
        starting_after=starting_after,
        customer_id=customer_id,
        sla_status=sla_status,
        priority=priority,
    )
    return Page(data=found, has_more=more)


@post(
    "/v1/incidents/{incident_id:str}/first-response",
    operation_id="recordFirstResponse",
    tags=TAGS,
    opt=HELPDESK,
    status_code=HTTP_200_OK,
    summary="Record the first response (default now): achieved, or breached when late",
)
async def first_response(
    state: State, incident_id: FromPath[str], data: JSONBody[FirstResponse | None] = None
) -> Incident:
    at = data.at if data else None
    return await _changed(state, await service.record_first_response(incident_id, at))


@post(
    "/v1/incidents/{incident_id:str}/pause",
    operation_id="pauseIncident",
    tags=TAGS,
    opt=HELPDESK,
    status_code=HTTP_200_OK,
    summary="Stop the SLA clock while waiting on the customer",
)
async def pause_incident(
    state: State, incident_id: FromPath[str], data: JSONBody[PauseRequest | None] = None
) -> Incident:
    at, reason = (data.at, data.reason) if data else (None, None)
    return await _changed(state, await service.pause(incident_id, at, reason))


@post(
    "/v1/incidents/{incident_id:str}/resume",
    operation_id="resumeIncident",
    tags=TAGS,
    opt=HELPDESK,
    status_code=HTTP_200_OK,
    summary="Restart the SLA clock; the deadline moves out by the paused business time",
)
async def resume_incident(
    state: State, incident_id: FromPath[str], data: JSONBody[ResumeRequest | None] = None
) -> Incident:
    return await _changed(state, await service.resume(incident_id, data.at if data else None))


@patch(
    "/v1/incidents/{incident_id:str}",
    operation_id="updateIncident",
    tags=TAGS,
    opt=HELPDESK,
    summary="Change the priority; the deadline is recomputed from opened_at",
)
async def update_incident(
    state: State, incident_id: FromPath[str], data: JSONBody[IncidentUpdate]
) -> Incident:
    return await _changed(state, await service.change_priority(incident_id, data.priority))


@post(
    "/v1/incidents/{incident_id:str}/resolve",
    operation_id="resolveIncident",
    tags=TAGS,
    opt=HELPDESK,
    status_code=HTTP_200_OK,
    summary="Close the incident (a second resolve is a 409)",
)
async def resolve_incident(
    state: State, incident_id: FromPath[str], data: JSONBody[ResolveRequest | None] = None
) -> Incident:
    return await _changed(state, await service.resolve(incident_id, data.at if data else None))


@get(
    "/v1/incidents/{incident_id:str}/events",
    operation_id="listIncidentEvents",
    tags=TAGS,
    opt=HELPDESK_OR_FINANCE,
    summary="The SLA event ledger of one incident, oldest first",
)
async def list_incident_events(
    incident_id: FromPath[str],
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
) -> Page[SlaEvent]:
    found, more = await service.list_events(incident_id, limit=limit, starting_after=starting_after)
    return Page(data=found, has_more=more)


@get(
    "/v1/customers/{customer_id:str}/entitlements/quote",
    operation_id="quoteDeadline",
    tags=["entitlements"],
    opt=HELPDESK,
    summary="The deadline an incident opened now (or at opened_at) would get, "
    "with and without fast-track, and the fast-track price",
)
async def quote_deadline(
    customer_id: FromPath[str],
    priority: FromQuery[Priority],
    opened_at: FromQuery[datetime | None] = None,
) -> Quote:
    return await service.quote(customer_id, priority, opened_at)


ROUTES: Sequence[ControllerRouterHandler] = (
    open_incident,
    get_incident,
    list_incidents,
    first_response,
    pause_incident,
    resume_incident,
    update_incident,
    resolve_incident,
    list_incident_events,
    quote_deadline,
)
