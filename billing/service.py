"""The billing use cases other packages call (the SLA engine, the API, the worker)."""

from __future__ import annotations

from datetime import datetime

from billing import credits, customers, entitlements, schemas, usage

create_customer = customers.create_customer
get_customer = customers.get_customer


async def get_entitlement(customer_id: str, at: datetime | None = None) -> schemas.Entitlement:
    return await entitlements.entitlement(customer_id, at)


async def claim_incident(
    customer_id: str, incident_id: str, opened_at: datetime, *, fast_track: bool
) -> schemas.IncidentClaim:
    return await usage.claim_incident(customer_id, incident_id, opened_at, fast_track=fast_track)


async def issue_breach_credit(incident_id: str) -> schemas.ServiceCreditOutcome:
    return await credits.issue_breach_credit(incident_id)


async def reissue_credit(credit_id: str) -> schemas.ServiceCreditOutcome:
    return await credits.reissue(credit_id)


async def failed_credit_ids() -> list[str]:
    return await credits.failed_ids()
