"""SLA domain errors; api/errors.py turns each family into problem+json."""

from __future__ import annotations

from common.errors import Conflict, InvalidRequest, NotFound


class IncidentNotFound(NotFound):
    pass


class IncidentConflict(Conflict):
    """The incident's state forbids the change (resolve twice, pause a resolved incident…)."""


class InvalidIncidentTime(InvalidRequest):
    """A time in the future, or before the incident was opened."""


class InvalidCalendar(InvalidRequest):
    """The customer's timezone, business hours or holiday country cannot be used."""


class NoTarget(InvalidRequest):
    """The entitlement promises nothing for the incident's priority."""
