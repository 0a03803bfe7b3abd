"""The one Stripe gateway: every Stripe call, with idempotency keys and retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import stripe

from billing.exceptions import (
    PaymentDeclined,
    StripeIdempotencyConflict,
    StripeRejected,
    StripeUnavailable,
)
from common.config import EMULATOR_API_KEY

log = logging.getLogger("billing.stripe")

StripeDict = dict[str, Any]


@dataclass(frozen=True)
class GatewayConfig:
    api_key: str
    api_base: str | None = None
    max_network_retries: int = 3
    timeout_seconds: float = 20.0
    rate_limit_retries: int = 4
    rate_limit_base_delay: float = 0.25


def _plain(obj: Any) -> StripeDict:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return cast(StripeDict, obj)


class StripeGateway:
    """Async Stripe calls on ``stripe.StripeClient``; writes always carry an idempotency key."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        base = {"api": config.api_base} if config.api_base else None
        self._http = stripe.HTTPXClient(timeout=config.timeout_seconds)
        self._client = stripe.StripeClient(
            config.api_key,
            base_addresses=cast(Any, base),
            max_network_retries=config.max_network_retries,
            http_client=self._http,
        )
        # The SDK's params are TypedDicts per endpoint; the gateway builds plain dicts.
        self._v1: Any = self._client.v1

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call] # untyped in the SDK

    async def _call(
        self,
        op: Callable[..., Awaitable[Any]],
        *args: Any,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> StripeDict:
        options: dict[str, Any] = {}
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        attempt = 0
        while True:
            try:
                result = await op(*args, params=dict(params or {}), options=options)
                return _plain(result)
            except stripe.RateLimitError as e:
                # The SDK retries 429 only when Stripe says so; we back off on every one,
                # reusing the idempotency key so a retried write never duplicates.
                attempt += 1
                if attempt > self.config.rate_limit_retries:
                    raise StripeUnavailable("Stripe is rate limiting; try again shortly") from e
                delay = self.config.rate_limit_base_delay * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (1 + random.random() / 2))  # noqa: S311 - jitter
            except stripe.CardError as e:
                raise PaymentDeclined(
                    f"the card was declined: {e.user_message or e.code or 'declined'}",
                    decline_code=getattr(e, "code", None),
                ) from e
            except stripe.IdempotencyError as e:
                raise StripeIdempotencyConflict(
                    f"Stripe refused a reused idempotency key: {e.user_message or e}"
                ) from e
            except stripe.InvalidRequestError as e:
                raise StripeRejected(f"Stripe refused the request: {e.user_message}") from e
            except (stripe.APIConnectionError, stripe.APIError) as e:
                log.warning("stripe unavailable: %s", e)
                raise StripeUnavailable("Stripe did not answer; try again shortly") from e
            except stripe.StripeError as e:
                raise StripeUnavailable(f"Stripe error: {e.user_message or e}") from e

    # ------------------------------------------------------------ customers

    async def create_customer(
        self, *, customer_id: str, external_id: str, name: str, email: str
    ) -> StripeDict:
        return await self._call(
            self._v1.customers.create_async,
            params={
                "name": name,
                "email": email,
                "metadata": {"customer_id": customer_id, "external_id": external_id},
            },
            idempotency_key=f"customer-create-{customer_id}",
        )

    async def retrieve_customer(self, stripe_customer_id: str) -> StripeDict:
        return await self._call(self._v1.customers.retrieve_async, stripe_customer_id)

    async def card_payment_methods(self, stripe_customer_id: str) -> list[StripeDict]:
        """The customer's attached cards, newest first (where Checkout leaves a saved card)."""
        found = await self._call(
            self._v1.customers.payment_methods.list_async,
            stripe_customer_id,
            params={"type": "card", "limit": 10},
        )
        return cast(list[StripeDict], found.get("data", []))

    async def portal_session(self, stripe_customer_id: str, return_url: str) -> StripeDict:
        return await self._call(
            self._v1.billing_portal.sessions.create_async,
            params={"customer": stripe_customer_id, "return_url": return_url},
            idempotency_key=None,
        )

    async def list_events(
        self, *, created_gte: int, created_lt: int, starting_after: str | None = None
    ) -> StripeDict:
        """One page (newest first) of the events Stripe created in ``[gte, lt)``."""
        params: dict[str, Any] = {
            "created": {"gte": created_gte, "lt": created_lt},
            "limit": 100,
        }
        if starting_after:
            params["starting_after"] = starting_after
        return await self._call(self._v1.events.list_async, params=params)

    async def list_page(
        self,
        object_type: str,
        *,
        starting_after: str | None = None,
        created_gte: int | None = None,
    ) -> StripeDict:
        """One page (newest first, 100 at most) of Stripe's ``invoice``, ``credit_note``,
        ``payment_intent`` or ``refund`` objects, optionally created at ``created_gte`` or
        later. PaymentIntents come with their latest charge (paid time, amount refunded)."""
        ops = {
            "invoice": self._v1.invoices.list_async,
            "credit_note": self._v1.credit_notes.list_async,
            "payment_intent": self._v1.payment_intents.list_async,
            "refund": self._v1.refunds.list_async,
        }
        params: dict[str, Any] = {"limit": 100}
        if object_type == "payment_intent":
            params["expand"] = ["data.latest_charge"]
        if starting_after:
            params["starting_after"] = starting_after
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        return await self._call(ops[object_type], params=params)

    async def invoice_lines(self, invoice_id: str, starting_after: str | None) -> StripeDict:
        """One page of an invoice's lines (an invoice carries only its first ones)."""
        params: dict[str, Any] = {"limit": 100}
        if starting_after:
            params["starting_after"] = starting_after
        return await self._call(self._v1.invoices.line_items.list_async, invoice_id, params=params)

    async def retrieve(self, object_type: str, stripe_id: str) -> StripeDict:
        """One of the objects ``list_page`` lists, as Stripe has it now."""
        ops = {
            "invoice": self._v1.invoices.retrieve_async,
            "credit_note": self._v1.credit_notes.retrieve_async,
            "payment_intent": self._v1.payment_intents.retrieve_async,
            "refund": self._v1.refunds.retrieve_async,
        }
        params = {"expand": ["latest_charge"]} if object_type == "payment_intent" else None
        return await self._call(ops[object_type], stripe_id, params=params)

    # ------------------------------------------------------------ catalog

    async def prices_by_lookup_keys(self, keys: list[str]) -> dict[str, StripeDict]:
        found = await self._call(
            self._v1.prices.list_async, params={"lookup_keys": keys, "limit": 100}
        )
        return {p["lookup_key"]: p for p in found.get("data", []) if p.get("lookup_key")}

    async def create_product(self, *, plan_id: str, code: str, name: str) -> StripeDict:
        return await self._call(
            self._v1.products.create_async,
            params={"name": name, "metadata": {"plan_id": plan_id, "plan_code": code}},
            idempotency_key=f"product-{plan_id}",
        )

    async def create_price(
        self,
        *,
        product: str,
        currency: str,
        unit_amount: int,
        interval: str,
        lookup_key: str,
        plan_id: str,
    ) -> StripeDict:
        return await self._call(
            self._v1.prices.create_async,
            params={
                "product": product,
                "currency": currency,
                "unit_amount": unit_amount,
                "recurring": {"interval": interval},
                "lookup_key": lookup_key,
                "metadata": {"plan_id": plan_id},
            },
            idempotency_key=f"price-{lookup_key}",
        )

    # ------------------------------------------------------------ subscriptions

    async def checkout_subscription(
        self,
        *,
        key: str,
        stripe_customer_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
    ) -> StripeDict:
        return await self._call(
            self._v1.checkout.sessions.create_async,
            params={
                "mode": "subscription",
                "customer": stripe_customer_id,
                "line_items": [{"price": price_id, "quantity": 1}],
                "success_url": success_url,
                "cancel_url": cancel_url,
                "metadata": metadata,
                "subscription_data": {"metadata": metadata},
                "client_reference_id": metadata.get("subscription_id", ""),
            },
            idempotency_key=f"checkout-{key}",
        )

    async def create_subscription(
        self,
        *,
        key: str,
        stripe_customer_id: str,
        price_id: str,
        metadata: dict[str, str],
        send_invoice: bool,
        days_until_due: int,
        payment_method: str | None,
    ) -> StripeDict:
        params: dict[str, Any] = {
            "customer": stripe_customer_id,
            "items": [{"price": price_id}],
            "metadata": metadata,
            "expand": ["latest_invoice"],
        }
        if send_invoice:
            params.update(collection_method="send_invoice", days_until_due=days_until_due)
        else:
            params.update(
                collection_method="charge_automatically", payment_behavior="error_if_incomplete"
            )
            if payment_method:
                params["default_payment_method"] = payment_method
        return await self._call(
            self._v1.subscriptions.create_async,
            params=params,
            idempotency_key=f"subscription-{key}",
        )

    async def find_subscription(
        self, stripe_customer_id: str, subscription_id: str
    ) -> StripeDict | None:
        """The customer's Stripe subscription made for our ``subscription_id``, if any."""
        return await self._find_by_metadata(
            self._v1.subscriptions.list_async,
            {"customer": stripe_customer_id, "status": "all"},
            "subscription_id",
            subscription_id,
        )

    async def _find_by_metadata(
        self, op: Callable[..., Awaitable[Any]], filters: dict[str, Any], key: str, value: str
    ) -> StripeDict | None:
        """The first listed object whose ``metadata[key]`` is ``value``, paging to the end."""
        params: dict[str, Any] = {**filters, "limit": 100}
        while True:
            page = await self._call(op, params=params)
            data = page.get("data", [])
            for obj in data:
                if (obj.get("metadata") or {}).get(key) == value:
                    return cast(StripeDict, obj)
            if not page.get("has_more") or not data:
                return None
            params["starting_after"] = data[-1]["id"]

    async def retrieve_subscription(self, stripe_subscription_id: str) -> StripeDict:
        return await self._call(self._v1.subscriptions.retrieve_async, stripe_subscription_id)

    async def preview_change(
        self,
        *,
        stripe_customer_id: str,
        stripe_subscription_id: str,
        item_id: str,
        price_id: str,
        proration_date: int,
        reset_anchor: bool,
    ) -> StripeDict:
        details: dict[str, Any] = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_date": proration_date,
            "proration_behavior": "always_invoice",
        }
        if reset_anchor:
            details["billing_cycle_anchor"] = {"type": "now"}
        return await self._call(
            self._v1.invoices.create_preview_async,
            params={
                "customer": stripe_customer_id,
                "subscription": stripe_subscription_id,
                "subscription_details": details,
            },
        )

    async def change_price(
        self,
        *,
        key: str,
        stripe_subscription_id: str,
        item_id: str,
        price_id: str,
        proration_date: int,
        metadata: dict[str, str],
        reset_anchor: bool,
    ) -> StripeDict:
        params: dict[str, Any] = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": "always_invoice",
            "proration_date": proration_date,
            "metadata": metadata,
            "cancel_at_period_end": False,
        }
        if reset_anchor:
            params["billing_cycle_anchor"] = {"type": "now"}
        return await self._call(
            self._v1.subscriptions.update_async,
            stripe_subscription_id,
            params=params,
            idempotency_key=f"change-{key}",
        )

    async def cancel_at_period_end(self, stripe_subscription_id: str, key: str) -> StripeDict:
        return await self._call(
            self._v1.subscriptions.update_async,
            stripe_subscription_id,
            params={"cancel_at_period_end": True},
            idempotency_key=f"cancel-end-{key}",
        )

    async def cancel_now(self, stripe_subscription_id: str, key: str) -> StripeDict:
        return await self._call(
            self._v1.subscriptions.cancel_async,
            stripe_subscription_id,
            idempotency_key=f"cancel-now-{key}",
        )

    # ------------------------------------------------------------ one-off payments

    async def checkout_payment(
        self,
        *,
        key: str,
        stripe_customer_id: str,
        name: str,
        unit_amount: int,
        currency: str,
        quantity: int,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
    ) -> StripeDict:
        return await self._call(
            self._v1.checkout.sessions.create_async,
            params={
                "mode": "payment",
                "customer": stripe_customer_id,
                "line_items": [
                    {
                        "quantity": quantity,
                        "price_data": {
                            "currency": currency,
                            "unit_amount": unit_amount,
                            "product_data": {"name": name},
                        },
                    }
                ],
                "success_url": success_url,
                "cancel_url": cancel_url,
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
            },
            idempotency_key=f"checkout-{key}",
        )

    async def charge_saved_method(
        self,
        *,
        key: str,
        stripe_customer_id: str,
        payment_method: str,
        amount: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
    ) -> StripeDict:
        return await self._call(
            self._v1.payment_intents.create_async,
            params={
                "amount": amount,
                "currency": currency,
                "customer": stripe_customer_id,
                "payment_method": payment_method,
                "off_session": True,
                "confirm": True,
                "description": description,
                "metadata": metadata,
            },
            idempotency_key=f"charge-{key}",
        )

    async def retrieve_checkout_session(self, session_id: str) -> StripeDict:
        return await self._call(self._v1.checkout.sessions.retrieve_async, session_id)

    async def refund(
        self, *, key: str, payment_intent: str, amount: int, metadata: dict[str, str]
    ) -> StripeDict:
        return await self._call(
            self._v1.refunds.create_async,
            params={
                "payment_intent": payment_intent,
                "amount": amount,
                "metadata": metadata,
                "reason": "requested_by_customer",
            },
            idempotency_key=f"refund-{key}",
        )

    # ------------------------------------------------------------ invoices and credits

    async def latest_paid_invoice(self, stripe_subscription_id: str) -> StripeDict | None:
        found = await self._call(
            self._v1.invoices.list_async,
            params={"subscription": stripe_subscription_id, "status": "paid", "limit": 1},
        )
        data = found.get("data", [])
        return cast(StripeDict, data[0]) if data else None

    async def credit_note(
        self, *, key: str, invoice: str, amount: int, memo: str, metadata: dict[str, str]
    ) -> StripeDict:
        return await self._call(
            self._v1.credit_notes.create_async,
            params={
                "invoice": invoice,
                "amount": amount,
                "credit_amount": amount,
                "memo": memo,
                "metadata": metadata,
                "reason": "order_change",
            },
            idempotency_key=f"credit-note-{key}",
        )

    async def find_credit(
        self,
        *,
        service_credit_id: str,
        invoice: str | None = None,
        payment_intent: str | None = None,
    ) -> StripeDict | None:
        """The credit note (on ``invoice``) or refund (of ``payment_intent``) made for our
        ``service_credit_id``, if Stripe has one."""
        if invoice is not None:
            op, filters = self._v1.credit_notes.list_async, {"invoice": invoice}
        elif payment_intent is not None:
            op, filters = self._v1.refunds.list_async, {"payment_intent": payment_intent}
        else:
            return None
        return await self._find_by_metadata(op, filters, "service_credit_id", service_credit_id)

    async def invoice_item(
        self,
        *,
        key: str,
        stripe_customer_id: str,
        amount: int,
        currency: str,
        description: str,
        stripe_subscription_id: str | None,
        metadata: dict[str, str],
    ) -> StripeDict:
        params: dict[str, Any] = {
            "customer": stripe_customer_id,
            "amount": amount,
            "currency": currency,
            "description": description,
            "metadata": metadata,
        }
        if stripe_subscription_id:
            params["subscription"] = stripe_subscription_id
        return await self._call(
            self._v1.invoice_items.create_async,
            params=params,
            idempotency_key=f"invoice-item-{key}",
        )


_gateway: StripeGateway | None = None


def configure_from_settings(settings: Any) -> None:
    """Configure from ``common.config.Settings`` (the emulator's key when none is set)."""
    configure(
        GatewayConfig(
            api_key=settings.stripe_api_key or EMULATOR_API_KEY,
            api_base=settings.stripe_api_base
            or (
                None
                if settings.stripe_api_key
                else f"http://127.0.0.1:{settings.stripe_emulator_port}"
            ),
            max_network_retries=settings.stripe_max_retries,
            timeout_seconds=settings.stripe_timeout_seconds,
        )
    )


_config: GatewayConfig | None = None


def configure(config: GatewayConfig) -> None:
    """Set the process-wide gateway's configuration (API start, worker start, tests)."""
    global _config
    _config = config


def gateway() -> StripeGateway:
    """The gateway, built on first use on the running event loop."""
    global _gateway
    if _gateway is None or _gateway.config != _config:
        if _config is None:
            raise RuntimeError("the Stripe gateway is not configured")
        _gateway = StripeGateway(_config)
    return _gateway


async def close() -> None:
    """Close the gateway's connections (API and worker shutdown)."""
    global _gateway
    if _gateway is not None:
        current, _gateway = _gateway, None
        await current.aclose()
