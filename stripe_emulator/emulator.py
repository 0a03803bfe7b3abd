"""One emulator instance, and the API pipeline: auth, faults, idempotency, request log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

# Importing the resource modules registers their routes.
from stripe_emulator import (  # noqa: F401
    catalog,
    checkout,
    credit_notes,
    customers,
    events,
    invoices,
    payments,
    subscriptions,
    timeline,
)
from stripe_emulator.errors import StripeError, api_error
from stripe_emulator.expand import render
from stripe_emulator.faults import Fault, Faults
from stripe_emulator.forms import Params, decode_body, decode_query
from stripe_emulator.idempotency import IdempotencyStore
from stripe_emulator.ids import new_id
from stripe_emulator.reference import check_expand, check_params, endpoint
from stripe_emulator.routing import Route, call, resolve
from stripe_emulator.shapes import ShapeLog
from stripe_emulator.state import RequestInfo, State
from stripe_emulator.store import Store
from stripe_emulator.webhooks import WebhookDispatcher

log = logging.getLogger("stripe_emulator")

DEFAULT_WEBHOOK_SECRET = "whsec_emulator_dev_secret"  # noqa: S105 - public dev default
KEY_PREFIXES = ("sk_test_", "rk_test_")
LOG_LIMIT = 50_000  # request log entries kept in a long dev session
_BUG = StripeError(500, "api_error", "The Stripe emulator failed on this request (see its log).")

_TEXT = {"type": "string"}
_NUMBER = {"type": "number"}
_EXPAND = {"type": "array", "items": _TEXT}


def _helper(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**properties, "expand": _EXPAND},
        "additionalProperties": False,
    }


# The emulator's own test helpers (Stripe has no such endpoints, so no reference for them).
HELPER_PARAMS: dict[str, dict[str, Any]] = {
    "/v1/test_helpers/advance_clock": _helper(seconds=_NUMBER, frozen_time=_NUMBER),
    "/v1/test_helpers/checkout/sessions/{session_id}/complete": _helper(
        outcome={"enum": ["paid", "declined"]}, payment_method=_TEXT
    ),
    "/v1/test_helpers/payment_intents/{pi_id}/authenticate": _helper(
        outcome={"enum": ["succeeded", "failed"]}
    ),
}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def params(self) -> dict[str, Any]:
        params = decode_query(self.query)
        if self.method == "POST":
            params.update(decode_body(self.body, self.headers.get("content-type", "")))
        return params


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data, indent=2).encode(), dict(headers or {}))

    @classmethod
    def error(cls, error: StripeError) -> Response:
        return cls.json(error.status, error.body(), error.headers)


class Emulator:
    """One emulator: the Stripe state plus the machinery around the API."""

    def __init__(
        self,
        webhook_url: str | None = None,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        *,
        check_shapes: bool = False,
        store: Store | None = None,
        webhook_time_scale: float = 1.0,
    ) -> None:
        self.state = State(webhook_url, webhook_secret, store)
        # Tests compare every response and event with Stripe's types (`reference.py`).
        self.shapes = ShapeLog() if check_shapes else None
        if self.shapes is not None:
            self.state.listeners.append(self.shapes.event)
        self.webhooks = WebhookDispatcher(self.state, time_scale=webhook_time_scale)
        self.faults = Faults()
        self.idempotency = IdempotencyStore()
        if store is not None:
            self.idempotency.load(store.idempotency())
        self.requests: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.state.reset()
        self.webhooks.reset()
        self.faults.clear()
        self.idempotency.clear()
        self.requests = []
        if self.shapes is not None:
            self.shapes.clear()

    def commit(self) -> None:
        """Write what the request just handled changed (with a store; else nothing)."""
        self.state.commit(self.idempotency.take_unsaved())

    # -- the API pipeline ------------------------------------------------------------

    async def handle_api(self, request: Request) -> Response:
        request_id = new_id("req")
        key = (
            request.headers.get("idempotency-key") if request.method in ("POST", "DELETE") else None
        )
        entry: dict[str, Any] = {
            "id": request_id,
            "method": request.method,
            "path": request.path,
            "idempotency_key": key,
            "status": None,
            "replayed": False,
            "fault": None,
            "time": time.time(),
        }
        self.requests.append(entry)
        if len(self.requests) > LOG_LIMIT:
            del self.requests[: LOG_LIMIT // 10]
        try:
            response = await self._api(request, request_id, key, entry)
        except StripeError as e:
            response = Response.error(e)
        except Exception:
            log.exception("emulator bug on %s %s", request.method, request.path)
            response = Response.error(_BUG)
        entry["status"] = response.status
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = request.headers.get(
            "stripe-version", self.state.api_version
        )
        if key:
            response.headers["Idempotency-Key"] = key
        return response

    async def _api(
        self, request: Request, request_id: str, key: str | None, entry: dict[str, Any]
    ) -> Response:
        _authenticate(request.headers.get("authorization"))
        params = request.params()
        fault = self.faults.take(request.method, request.path)
        if fault is not None:
            entry["fault"] = f"{fault.when}:{fault.status or 'timeout'}"
            if fault.when == "before":
                await _stall(fault)
                raise fault.error() or api_error(500)
        found = resolve(request.method, request.path)
        if found is None:
            raise StripeError(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        _validate(found[0], params)
        endpoint = f"{request.method} {request.path}"
        stored = self.idempotency.lookup(key, endpoint, params) if key else None
        if stored is not None:
            entry["replayed"] = True
            response = Response(
                stored.status,
                stored.body,
                {"Idempotent-Replayed": "true", "Original-Request": stored.request_id},
            )
        else:
            response = self._run(found, params, request_id, key)
            if key and response.status < 500:
                self.idempotency.save(
                    key, endpoint, params, response.status, response.body, request_id
                )
        if fault is not None:
            await _stall(fault)
            error = fault.error()
            if error is not None:
                raise error
        return response

    def _run(
        self,
        found: tuple[Route, dict[str, str]],
        params: dict[str, Any],
        request_id: str,
        key: str | None,
    ) -> Response:
        state = self.state
        timeline.catch_up(state)
        state.request = RequestInfo(request_id, key)
        try:
            result = call(found, state, Params(params))
            expand = [str(p) for p in Params(params).array("expand")]
            body = render(state, result, expand)
            if self.shapes is not None:
                self.shapes.response(found[0].method, found[0].template, body)
            return Response.json(200, body)
        except StripeError as e:
            return Response.error(e)
        except Exception:
            log.exception("emulator bug handling %s", found[0].template)
            return Response.error(_BUG)
        finally:
            state.request = RequestInfo()


def _validate(found: Route, params: dict[str, Any]) -> None:
    """Stripe's 400 for a parameter or `expand[]` path the pinned API version does not accept.

    Checked before idempotency, as on Stripe: a request that fails validation stores nothing.
    """
    reference = endpoint(found.method, found.template)
    schema = reference["params"] if reference else HELPER_PARAMS[found.template]
    expand = params.get("expand")
    if reference is not None and isinstance(expand, list):
        check_expand(reference["response"], [str(p) for p in expand])
    check_params(schema, params)


async def _stall(fault: Fault) -> None:
    if fault.timeout:
        await asyncio.sleep(fault.timeout)


def _authenticate(header: str | None) -> None:
    if not header:
        raise StripeError(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    scheme, _, value = header.partition(" ")
    key = value.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key).decode().partition(":")[0]
        except ValueError:
            key = ""
    if not key.startswith(KEY_PREFIXES):
        shown = f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else key
        raise StripeError(401, "invalid_request_error", f"Invalid API Key provided: {shown}")
