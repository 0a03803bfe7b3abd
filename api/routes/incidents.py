"""HTTP routes of the incidents capability, and the deadline quote that shares their arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from litestar import Controller, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
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
    SlaJob,
    SlaStatus,
)
from workers import queue


class DeadlineChecks:
    """Schedules the jobs a committed SLA change returned; with Redis away the sweep will."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def schedule(self, jobs: Sequence[SlaJob]) -> None:
        if jobs:
            await queue.after_commit(queue.enqueue_sla_jobs(self._redis, jobs), "deadline checks")

    async def changed(self, changed: service.Changed) -> Incident:
        await self.schedule(changed.jobs)
        return changed.incident


def provide_deadline_checks(state: State) -> DeadlineChecks:
    return DeadlineChecks(state.redis)


class IncidentController(Controller):
    """Helpdesk tickets under an SLA: open, read, answer, pause, resume, re-prioritise, resolve."""

    path = "/v1/incidents"
    tags = ["incidents"]
    opt = HELPDESK
    dependencies = {"checks": Provide(provide_deadline_checks, sync_to_thread=False)}

    @post(
        operation_id="openIncident",
        status_code=HTTP_201_CREATED,
        summary="Open an incident (the same customer_id + external_ref returns it again, with 200)",
        responses={
            HTTP_200_OK: ResponseSpec(
                data_container=Incident,
                description="The incident opened before with this external_ref",
            )
        },
    )
    async def open_incident(
        self, checks: NamedDependency[DeadlineChecks], data: JSONBody[IncidentCreate]
    ) -> Response[Incident]:
        """Report a helpdesk ticket as an incident: its deadline is computed from `opened_at`
        (default now; an earlier time is the ticket's own creation) under the entitlement in force
        then, which the incident keeps (`entitlement`, with `basis` saying why that tier). With
        `fast_track: true` one fast-track credit is spent (422 when none is left). The same
        `customer_id` + `external_ref` answers the existing incident with 200. The worker warns at
        `warn_at` and breaches at `due_at` unless a first response came."""
        opened = await service.open_incident(data)
        await checks.schedule(opened.jobs)
        return Response(
            opened.incident, status_code=HTTP_201_CREATED if opened.created else HTTP_200_OK
        )

    @get(
        "/{incident_id:str}",
        operation_id="getIncident",
        summary="One incident with its deadline and SLA status",
    )
    async def get_incident(self, incident_id: FromPath[str]) -> Incident:
        """One incident: its deadline, warnings, SLA status, pauses, escalation level and, once
        breached, its service credit."""
        return await service.get_incident(incident_id)

    @get(
        operation_id="listIncidents",
        summary="Incidents, newest first; filter by customer, SLA status and priority",
    )
    async def list_incidents(
        self,
        customer_id: FromQuery[str | None] = None,
        sla_status: FromQuery[SlaStatus | None] = None,
        priority: FromQuery[Priority | None] = None,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[Incident]:
        """Incidents newest first (keyset pages), filtered by customer, SLA status (`active`,
        `paused`, `achieved`, `breached`) or priority."""
        found, more = await service.list_incidents(
            limit=limit,
            starting_after=starting_after,
            customer_id=customer_id,
            sla_status=sla_status,
            priority=priority,
        )
        return Page(data=found, has_more=more)

    @post(
        "/{incident_id:str}/first-response",
        operation_id="recordFirstResponse",
        status_code=HTTP_200_OK,
        summary="Record the first response (default now): achieved, or breached when late",
    )
    async def first_response(
        self,
        checks: NamedDependency[DeadlineChecks],
        incident_id: FromPath[str],
        data: JSONBody[FirstResponse | None] = None,
    ) -> Incident:
        """Record the first response (at `at`, default now; not in the future nor before
        `opened_at`): `achieved` when within the deadline, else `breached` (already, or now).
        A second first response is 409."""
        at = data.at if data else None
        return await checks.changed(await service.record_first_response(incident_id, at))

    @post(
        "/{incident_id:str}/pause",
        operation_id="pauseIncident",
        status_code=HTTP_200_OK,
        summary="Stop the SLA clock while waiting on the customer",
    )
    async def pause_incident(
        self,
        checks: NamedDependency[DeadlineChecks],
        incident_id: FromPath[str],
        data: JSONBody[PauseRequest | None] = None,
    ) -> Incident:
        """Stop the SLA clock while waiting on the customer. Only an active incident before its
        deadline pauses (409 otherwise); the deadline moves out by the paused business time on
        resume."""
        at, reason = (data.at, data.reason) if data else (None, None)
        return await checks.changed(await service.pause(incident_id, at, reason))

    @post(
        "/{incident_id:str}/resume",
        operation_id="resumeIncident",
        status_code=HTTP_200_OK,
        summary="Restart the SLA clock; the deadline moves out by the paused business time",
    )
    async def resume_incident(
        self,
        checks: NamedDependency[DeadlineChecks],
        incident_id: FromPath[str],
        data: JSONBody[ResumeRequest | None] = None,
    ) -> Incident:
        """Restart the SLA clock; the deadline moves out by the paused business time and the
        warning and deadline checks are re-scheduled."""
        return await checks.changed(await service.resume(incident_id, data.at if data else None))

    @patch(
        "/{incident_id:str}",
        operation_id="updateIncident",
        summary="Change the priority; the deadline is recomputed from opened_at",
    )
    async def update_incident(
        self,
        checks: NamedDependency[DeadlineChecks],
        incident_id: FromPath[str],
        data: JSONBody[IncidentUpdate],
    ) -> Incident:
        """Change the priority: the deadline is recomputed from `opened_at` with the new
        priority's target. Refused (409) once the outcome is final (achieved or breached)."""
        return await checks.changed(await service.change_priority(incident_id, data.priority))

    @post(
        "/{incident_id:str}/resolve",
        operation_id="resolveIncident",
        status_code=HTTP_200_OK,
        summary="Close the incident (a second resolve is a 409)",
    )
    async def resolve_incident(
        self,
        checks: NamedDependency[DeadlineChecks],
        incident_id: FromPath[str],
        data: JSONBody[ResolveRequest | None] = None,
    ) -> Incident:
        """Close the incident. Without a first response the resolution counts as one (so it may
        be achieved or breached now). A second resolve is 409."""
        return await checks.changed(await service.resolve(incident_id, data.at if data else None))

    @get(
        "/{incident_id:str}/events",
        operation_id="listIncidentEvents",
        opt=HELPDESK_OR_FINANCE,
        summary="The SLA event ledger of one incident, oldest first",
    )
    async def list_incident_events(
        self,
        incident_id: FromPath[str],
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[SlaEvent]:
        """The incident's append-only ledger, oldest first: opened, warning, paused, resumed,
        priority_changed, first_response, achieved, breached, escalated, credit_issued, resolved."""
        found, more = await service.list_events(
            incident_id, limit=limit, starting_after=starting_after
        )
        return Page(data=found, has_more=more)


class DeadlineQuoteController(Controller):
    """The deadline an incident would get: the same arithmetic as opening one."""

    path = "/v1/customers/{customer_id:str}/entitlements/quote"
    tags = ["entitlements"]
    opt = HELPDESK

    @get(
        operation_id="quoteDeadline",
        summary="The deadline an incident opened now (or at opened_at) would get, "
        "with and without fast-track, and the fast-track price",
    )
    async def quote_deadline(
        self,
        customer_id: FromPath[str],
        priority: FromQuery[Priority],
        opened_at: FromQuery[datetime | None] = None,
    ) -> Quote:
        """The upsell: the deadline an incident of this priority opened now (or at `opened_at`)
        would get under the customer's entitlement, and with fast-track: its deadline, price,
        the credits left and whether it would be faster."""
        return await service.quote(customer_id, priority, opened_at)


ROUTES: Sequence[ControllerRouterHandler] = (IncidentController, DeadlineQuoteController)
